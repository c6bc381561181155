//! Every envelope the crate produces validates (xmllint --schema) against the public ШЭП XSDs and
//! the project's own wsdl/shep; what we read back equals what we built; and the strict reader and
//! xmllint agree on envelopes that break the schema.

mod common;

use common::{assert_valid, own_schemas, payload_of, xmllint_validate, PublicSchemas};
use qaqpa_shep::async_channel::{
    self, AsyncReply, ChangeStatusNotifyRequest, ChangeStatusNotifyResponse, Operation, Part,
};
use qaqpa_shep::envelope::{Fault, FaultCode};
use qaqpa_shep::sync_channel::{fault_envelope, SyncReply};
use qaqpa_shep::xml::{parse, serialize_element, XmlLimits};
use qaqpa_shep::*;
use time::macros::datetime;

fn full_request() -> SyncRequest {
    SyncRequest::new(
        "GbdulInfoByBin_v2",
        SenderInfo::new("qaqpa", Some("s3cr&t<".into())),
        Some(MessageData::text(
            "<Request xmlns=\"http://gbdulinfobybin_v2.egp.gbdul.tamur.kz\"><BIN>123456789012</BIN></Request>",
        )),
    )
    .with_message_id("3f2c6a52-8d4e-4a8e-9d55-2d6f0f1b7c11")
    .with_correlation_id("chain-1")
    .with_route_id("R_ESEDO")
    .with_property(Property::new("docKind", "письмо").expect("fits"))
    .with_property(Property::new("k".repeat(30), "v".repeat(500)).expect("fits at the limits"))
    .with_session_id(SessionId::parse("{01234567-89ab-cdef-0123-456789abcdef}").expect("guid"))
    .with_message_date(datetime!(2026-11-23 17:30:00.250 +05:00))
}

#[test]
fn sync_request_with_every_field_validates_against_public_and_own_xsd() {
    let public = PublicSchemas::new();
    let own = own_schemas();
    let envelope = full_request().to_envelope().expect("builds");
    assert_valid(&envelope, &public.sync, &own.sync);
}

#[test]
fn sync_request_with_typed_xml_data_validates_and_round_trips() {
    let public = PublicSchemas::new();
    let own = own_schemas();
    let fragment = r#"<m:message xmlns:m="urn:esedo:model"><m:metadataSystem><m:href>a1</m:href></m:metadataSystem><m:note>Текст &amp; знаки</m:note></m:message>"#;
    let request = SyncRequest::new(
        "ESEDO_UNIVERSAL_SERVICE",
        SenderInfo::new("qaqpa", None),
        Some(MessageData::xml(fragment, None).expect("well-formed")),
    );
    let envelope = request.to_envelope().expect("builds");
    assert_valid(&envelope, &public.sync, &own.sync);
    let back = SyncRequest::from_envelope(&envelope, &XmlLimits::default()).expect("reads");
    assert_eq!(back.data, request.data);
    assert_eq!(back.info.service_id, "ESEDO_UNIVERSAL_SERVICE");
}

#[test]
fn sync_request_round_trips_every_field() {
    let request = full_request();
    let envelope = request.to_envelope().expect("builds");
    let back = SyncRequest::from_envelope(&envelope, &XmlLimits::default()).expect("reads");
    assert_eq!(back, request);
}

#[test]
fn sync_responses_validate_and_round_trip() {
    let public = PublicSchemas::new();
    let own = own_schemas();
    for response in [
        SyncResponse::success(Some(MessageData::text("<ok/>")))
            .with_correlation_id("c")
            .with_session_id(SessionId::random()),
        SyncResponse::new(Status::new("SCSE002", "БИН 123 не найден"), None),
        SyncResponse::new(Status::new("SCSE003", "x".repeat(400)), None),
    ] {
        let envelope = response.to_envelope().expect("builds");
        assert_valid(&envelope, &public.sync, &own.sync);
        match SyncReply::from_envelope(&envelope, &XmlLimits::default()).expect("reads") {
            SyncReply::Response(back) => {
                assert_eq!(back.info.status, response.info.status);
                assert_eq!(back.data, response.data);
                assert_eq!(back.info.session_id, response.info.session_id);
            }
            SyncReply::Fault(f) => panic!("read a fault: {f:?}"),
        }
    }
}

#[test]
fn fault_detail_error_info_validates_and_round_trips() {
    let public = PublicSchemas::new();
    let own = own_schemas();
    let mut info = ErrorInfo::new("SCSE002", "Ошибка в данных");
    info.error_data = Some("field BIN".into());
    info.session_id = Some(SessionId::random());
    info.sub_error = Some(Box::new(ErrorInfo::new("E42", "inner")));
    let fault = Fault::new(FaultCode::Client, "bad data", Some(info.clone()));
    let envelope = fault_envelope(&fault);
    let doc = parse(&envelope, &XmlLimits::default()).expect("parses");
    let detail = doc
        .descendants()
        .find(|n| n.has_tag_name((ns::SYNC, "SendMessageFault1_SendMessageFault")))
        .expect("detail element");
    let detail_xml = serialize_element(detail);
    xmllint_validate(&public.sync, &detail_xml).expect("public XSD accepts the fault detail");
    xmllint_validate(&own.sync, &detail_xml).expect("own XSD accepts the fault detail");
    match SyncReply::from_envelope(&envelope, &XmlLimits::default()).expect("reads") {
        SyncReply::Fault(back) => {
            assert_eq!(back.code, FaultCode::Client);
            let back_info = back.error_info.expect("error info");
            assert_eq!(back_info.error_code, "SCSE002");
            assert_eq!(back_info.sub_error.expect("sub").error_code, "E42");
        }
        SyncReply::Response(r) => panic!("read a response: {r:?}"),
    }
}

fn sender() -> SenderInfo {
    SenderInfo::new("qaqpa", Some("pw".into()))
}

fn check_async<T: Part + PartialEq + std::fmt::Debug>(
    envelope: &str,
    public: &std::path::Path,
    own: &std::path::Path,
    original: &T,
) {
    assert_valid(envelope, public, own);
    let doc = parse(envelope, &XmlLimits::default()).expect("parses");
    let payload = qaqpa_shep::envelope::body_payload(&doc).expect("payload");
    let wrapper = if payload.tag_name().name().ends_with("Response") {
        "response"
    } else {
        "request"
    };
    let back: T = async_channel::read_operation(payload, wrapper).expect("reads back");
    assert_eq!(&back, original);
}

fn at() -> time::OffsetDateTime {
    datetime!(2026-11-23 12:00:00.000 UTC)
}

#[test]
fn async_channel_requests_and_responses_validate_and_round_trip() {
    let public = PublicSchemas::new();
    let own = own_schemas();
    let (p, o) = (&public.async_channel, &own.async_channel);

    let mut message = AsyncMessage::request("ESEDO_ASYNC", sender(), MessageData::text("<doc/>"))
        .with_route_id("R1")
        .with_property(Property::new("a", "b").expect("fits"));
    message.info.message_date = at();
    let env = async_channel::request_envelope(Operation::SendMessage, &message).expect("builds");
    check_async(&env, p, o, &message);

    let sent = AsyncSendMessageResponse {
        message_id: "m1".into(),
        correlation_id: "c1".into(),
        response_date: at(),
        session_id: Some(SessionId::random()),
    };
    let env =
        async_channel::response_envelope(Operation::SendMessage, ns::ASYNC, &sent).expect("builds");
    check_async(&env, p, o, &sent);

    let mut get = GetMessagesRequest::new("ESEDO_ASYNC", sender(), Some(10));
    get.request_date = Some(at());
    let env = async_channel::request_envelope(Operation::GetMessages, &get).expect("builds");
    check_async(&env, p, o, &get);

    let mut follow = AsyncMessage::follow_up(
        MessageType::Response,
        "c1",
        "ESEDO_ASYNC",
        sender(),
        MessageData::xml("<r xmlns=\"urn:x\">1</r>", None).expect("xml"),
    );
    follow.info.message_id = Some("m2".into());
    follow.info.message_date = at();
    let got = GetMessagesResponse {
        response_date: at(),
        session_id: SessionId::random(),
        messages: vec![message.clone(), follow],
    };
    let env =
        async_channel::response_envelope(Operation::GetMessages, ns::ASYNC, &got).expect("builds");
    check_async(&env, p, o, &got);

    let mut status = GetMessageStatusRequest::new("m1", sender());
    status.request_date = at();
    let env =
        async_channel::request_envelope(Operation::GetMessageStatus, &status).expect("builds");
    check_async(&env, p, o, &status);

    let status_reply = GetMessageStatusResponse {
        message_state: MessageState::Delivered,
        status: MessageStatusInfo {
            status_code: "DELIVERED".into(),
            status_message: "ok".into(),
            status_date: at(),
        },
        response_date: at(),
        session_id: Some("any string here".into()),
    };
    let env =
        async_channel::response_envelope(Operation::GetMessageStatus, ns::ASYNC, &status_reply)
            .expect("builds");
    check_async(&env, p, o, &status_reply);

    let mut error = ErrorInfo::new("E1", "not accepted");
    error.error_date = at();
    let mut note = SendDeliveryNotificationRequest::new(
        "m1",
        "ESEDO_ASYNC",
        ReceiveStatus::NotAccepted,
        ResendMessage::Resend,
        Some(error),
        Some(sender()),
    );
    note.request_date = at();
    note.notification.notification_date = at();
    note.notification.delivery_status.status_date = at();
    let env = async_channel::request_envelope(Operation::SendDeliveryNotification, &note)
        .expect("builds");
    check_async(&env, p, o, &note);
    assert!(
        env.contains("MESSAGE_NOT_ACCTEPTED"),
        "the wire spelling is kept"
    );

    let note_reply = SendDeliveryNotificationResponse {
        notification_id: "n1".into(),
        response_date: at(),
        session_id: SessionId::random(),
    };
    let env = async_channel::response_envelope(
        Operation::SendDeliveryNotification,
        ns::ASYNC,
        &note_reply,
    )
    .expect("builds");
    check_async(&env, p, o, &note_reply);
}

#[test]
fn change_massage_status_notification_validates_against_the_client_schemas() {
    let public = PublicSchemas::new();
    let own = own_schemas();
    let request = ChangeStatusNotifyRequest {
        notification: ChangeStatusNotification {
            notification_id: "n1".into(),
            message_id: "m1".into(),
            notification_date: at(),
            message_state: MessageState::NotDelivered,
            status: MessageStatusInfo {
                status_code: "NOT_DELIVERED".into(),
                status_message: "recipient down".into(),
                status_date: at(),
            },
            error: Some({
                let mut e = ErrorInfo::new("E9", "timeout");
                e.error_date = at();
                e
            }),
        },
        request_date: at(),
        session_id: Some(SessionId::random()),
    };
    let env = async_channel::request_envelope(Operation::ChangeMassageStatusNotification, &request)
        .expect("builds");
    assert!(payload_of(&env).starts_with("<ac:changeMassageStatusNotification"));
    check_async(&env, &public.async_client, &own.async_client, &request);
    let reply = ChangeStatusNotifyResponse {
        response_date: at(),
        session_id: SessionId::random(),
    };
    let env = async_channel::response_envelope(
        Operation::ChangeMassageStatusNotification,
        ns::ASYNC_CLIENT,
        &reply,
    )
    .expect("builds");
    check_async(&env, &public.async_client, &own.async_client, &reply);
    match async_channel::read_reply::<ChangeStatusNotifyResponse>(
        Operation::ChangeMassageStatusNotification,
        &env,
        &XmlLimits::default(),
    )
    .expect("reads")
    {
        AsyncReply::Response(r) => assert_eq!(r, reply),
        AsyncReply::Fault(f) => panic!("fault {f:?}"),
    }
}

#[test]
fn builder_refuses_what_the_schema_forbids() {
    assert!(Property::new("k".repeat(31), "v").is_err());
    assert!(Property::new("k", "v".repeat(501)).is_err());
    assert!(SessionId::parse("01234567-89ab-cdef-0123-456789abcdef").is_err());
    let bad = SyncRequest::new("", SenderInfo::new("q", None), None);
    assert!(matches!(
        bad.to_envelope(),
        Err(EnvelopeError::Invalid { .. })
    ));
    let follow_without_chain = AsyncMessage {
        info: AsyncMessageInfo {
            message_type: MessageType::Update,
            ..AsyncMessage::request("S", sender(), MessageData::text("x")).info
        },
        data: MessageData::text("x"),
    };
    assert!(
        async_channel::request_envelope(Operation::SendMessage, &follow_without_chain).is_err()
    );
    assert!(MessageData::xml("<a><b></a>", None).is_err());
}

/// Envelopes broken by hand: both xmllint (public XSD) and our strict reader refuse each one,
/// and our reader says where.
#[test]
fn strict_reader_and_xmllint_agree_on_schema_violations() {
    let public = PublicSchemas::new();
    let good = SyncRequest::new(
        "S1",
        SenderInfo::new("q", None),
        Some(MessageData::text("x")),
    )
    .to_envelope()
    .expect("builds");
    let cases: Vec<(&str, String)> = vec![
        (
            "serviceId before messageId",
            good.replacen("<messageId>", "<serviceId>S0</serviceId><messageId>", 1),
        ),
        (
            "unknown element",
            good.replacen("</sender>", "</sender><colour>red</colour>", 1),
        ),
        ("missing sender", {
            let start = good.find("<sender>").expect("sender");
            let end = good.find("</sender>").expect("sender end") + "</sender>".len();
            format!("{}{}", &good[..start], &good[end..])
        }),
        ("bad dateTime", {
            let start = good.find("<messageDate>").expect("date") + "<messageDate>".len();
            let end = good.find("</messageDate>").expect("date end");
            format!("{}23.11.2026{}", &good[..start], &good[end..])
        }),
        (
            "session id without braces",
            good.replacen(
                "</sender>",
                "</sender><sessionId>01234567-89ab-cdef-0123-456789abcdef</sessionId>",
                1,
            ),
        ),
        (
            "property key too long",
            good.replacen(
                "</sender>",
                &format!(
                    "</sender><properties><key>{}</key><value>v</value></properties>",
                    "k".repeat(31)
                ),
                1,
            ),
        ),
        (
            "qualified child",
            good.replacen("<request>", "<sc:request>", 1).replacen(
                "</request>",
                "</sc:request>",
                1,
            ),
        ),
    ];
    for (name, envelope) in cases {
        let ours = SyncRequest::from_envelope(&envelope, &XmlLimits::default());
        match &ours {
            Err(EnvelopeError::Schema { line, column, .. }) => {
                assert!(*line >= 1 && *column >= 1, "{name}: position given")
            }
            other => panic!("{name}: our reader accepted or failed oddly: {other:?}"),
        }
        let theirs = xmllint_validate(&public.sync, &payload_of(&envelope));
        assert!(theirs.is_err(), "{name}: xmllint accepted it");
    }
    // And the unbroken one passes both.
    assert!(SyncRequest::from_envelope(&good, &XmlLimits::default()).is_ok());
    assert!(xmllint_validate(&public.sync, &payload_of(&good)).is_ok());
}

#[test]
fn body_with_two_elements_or_a_second_body_is_refused() {
    let good = SyncRequest::new("S1", SenderInfo::new("q", None), None)
        .to_envelope()
        .expect("builds");
    let two = good.replacen("</soap:Body>", "<x/></soap:Body>", 1);
    assert!(SyncRequest::from_envelope(&two, &XmlLimits::default()).is_err());
    let second_body = good.replacen("</soap:Envelope>", "<soap:Body/></soap:Envelope>", 1);
    assert!(SyncRequest::from_envelope(&second_body, &XmlLimits::default()).is_err());
    let with_dtd = good.replacen(
        "<soap:Envelope",
        "<!DOCTYPE soap:Envelope [<!ENTITY e \"x\">]><soap:Envelope",
        1,
    );
    assert!(matches!(
        SyncRequest::from_envelope(&with_dtd, &XmlLimits::default()),
        Err(EnvelopeError::Malformed(_))
    ));
}
