//! ЕСЭДО notification-receipts (`state*`) as Qaqpa receipts, and the fold of a letter's receipts
//! into its card: sent, delivered, registered (with the recipient's number), executor and
//! contacts, deadline and its changes, control, result. The fold never moves the stage
//! backwards on a late or repeated receipt, while field changes (deadlines, control) apply in
//! arrival order.
use qaqpa_core::Receipt;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::model::EsedoMessage;

/// The receipt kind of a notification type, and whether it corrects an earlier one.
pub fn kind_of(type_name: &str) -> Option<&'static str> {
    Some(match type_name {
        "stateStartProcessResponse" => "taken_in",
        "stateDelivered" => "delivered",
        "stateRegistered" => "registered",
        "stateNotValid" => "not_valid",
        "stateExecution" => "execution",
        "stateNewControl" => "control_set",
        "stateNewExDate" => "deadline_changed",
        "stateProlongExDate" => "deadline_prolonged",
        "stateTakeOfControl" => "control_removed",
        "stateNewControlWrong" => "control_set_wrong",
        "stateTakeOfControlWrong" => "control_removed_wrong",
        "stateFinished" => "finished",
        _ => return None,
    })
}

/// The text of an `isValidReason` code.
pub fn not_valid_reason(code: &str) -> String {
    match code.trim() {
        "1" => "bad link (the document's files could not be fetched)".into(),
        "2" => "signature check failed".into(),
        "3" => "not drawn up per the regulations".into(),
        other => other.to_owned(),
    }
}

fn datetime(text: Option<&str>) -> Option<String> {
    text.and_then(qaqpa_shep::types::parse_datetime)
        .map(qaqpa_shep::types::format_datetime)
}

/// Translates a notification into a receipt. `notification_id` is the ШЭП messageId the
/// notification came with (its own identity); `received_at` dates receipts that carry no date.
pub fn to_receipt(
    m: &EsedoMessage,
    notification_id: &str,
    received_at: OffsetDateTime,
) -> Option<Receipt> {
    let kind = kind_of(&m.type_name)?;
    let mut data = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            data.insert(key.to_owned(), Value::String(v));
        }
    };
    let field = |name: &str| m.get(name).map(|v| v.trim().to_owned());
    put("href", m.metadata.href.clone());
    put("user_uin", field("userUin"));
    match m.type_name.as_str() {
        "stateStartProcessResponse" => put("description", field("description")),
        "stateRegistered" => {
            put("reg_no", field("regNo"));
            put("second_sign_notif_data", field("secondSignNotifData"));
        }
        "stateNotValid" => {
            put("reason_code", field("isValidReason"));
            put(
                "reason",
                field("isValidReason").map(|c| not_valid_reason(&c)),
            );
        }
        "stateExecution" => {
            put("executor", field("executive"));
            put("executor_phone", field("executivePhone"));
            put("deadline", datetime(m.get("execDate")));
        }
        "stateNewControl" | "stateNewExDate" | "stateProlongExDate" | "stateTakeOfControl" => {
            put("deadline", datetime(m.get("execDate")));
            put("control_type_code", field("controlTypeCode"));
            put("control_type_name_ru", field("controlTypeNameRu"));
            put("control_type_name_kz", field("controlTypeNameKz"));
        }
        "stateNewControlWrong" | "stateTakeOfControlWrong" => {
            data.insert("correction".into(), Value::Bool(true));
        }
        "stateFinished" => {
            put("author", field("author"));
            put("result_code", field("resultCode"));
            put("result_text", field("resultText"));
            put("finished_at", datetime(m.get("realDate")));
        }
        _ => {}
    }
    let at = m
        .get("date")
        .or_else(|| m.get("realDate"))
        .and_then(qaqpa_shep::types::parse_datetime)
        .unwrap_or(received_at);
    Some(Receipt {
        kind: kind.to_owned(),
        at,
        data: Value::Object(data),
        dedup_key: Some(format!("{notification_id}:{}", m.type_name)),
    })
}

/// The "sent" receipt of a delivered letter.
pub fn sent_receipt(href: &str, at: OffsetDateTime, session: Option<String>) -> Receipt {
    Receipt {
        kind: "sent".into(),
        at,
        data: json!({ "href": href, "session_id": session }),
        dedup_key: Some(format!("{href}:sent")),
    }
}

/// Stage order of the letter card.
fn rank(stage: &str) -> u8 {
    match stage {
        "sent" => 1,
        "delivered" => 2,
        "registered" => 3,
        "in_execution" => 4,
        "executed" => 5,
        _ => 0,
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn time_of(r: &Receipt) -> String {
    qaqpa_shep::types::format_datetime(r.at)
}

/// Folds receipts (arrival order) into the outgoing letter's card.
pub fn fold_card(receipts: &[Receipt]) -> Value {
    let mut stage: Option<String> = None;
    let mut not_valid = false;
    let mut card = Map::new();
    let mut history: Vec<Value> = Vec::new();
    let mut control = false;
    let mut seen = std::collections::HashSet::new();
    let advance = |stage: &mut Option<String>, not_valid: bool, to: &str| {
        if not_valid {
            return;
        }
        let now = stage.as_deref().map(rank).unwrap_or(0);
        if rank(to) > now {
            *stage = Some(to.to_owned());
        }
    };
    let set_once = |card: &mut Map<String, Value>, key: &str, value: Value| {
        if !card.contains_key(key) {
            card.insert(key.to_owned(), value);
        }
    };
    for r in receipts {
        if let Some(k) = &r.dedup_key {
            if !seen.insert(k.clone()) {
                continue;
            }
        }
        let d = &r.data;
        match r.kind.as_str() {
            "sent" => {
                set_once(&mut card, "sent_at", json!(time_of(r)));
                advance(&mut stage, not_valid, "sent");
            }
            "taken_in" => {
                set_once(&mut card, "taken_in_at", json!(time_of(r)));
                advance(&mut stage, not_valid, "sent");
            }
            "delivered" => {
                set_once(&mut card, "delivered_at", json!(time_of(r)));
                advance(&mut stage, not_valid, "delivered");
            }
            "registered" => {
                set_once(&mut card, "registered_at", json!(time_of(r)));
                if let Some(no) = text(d, "reg_no") {
                    card.insert("reg_no".into(), json!(no));
                }
                advance(&mut stage, not_valid, "registered");
            }
            "not_valid" => {
                let reason = text(d, "reason").or_else(|| text(d, "reason_code"));
                card.insert("not_valid_reason".into(), json!(reason));
                set_once(&mut card, "not_valid_at", json!(time_of(r)));
                // Terminal only before registration: a late one does not undo a registration.
                if stage.as_deref().map(rank).unwrap_or(0) < rank("registered") {
                    not_valid = true;
                    stage = Some("not_valid".into());
                }
            }
            "execution" => {
                let executor = json!({
                    "name": text(d, "executor"),
                    "phone": text(d, "executor_phone"),
                });
                card.insert("executor".into(), executor);
                if let Some(dl) = text(d, "deadline") {
                    card.insert("deadline".into(), json!(dl));
                    history.push(json!({"deadline": dl, "kind": "execution", "at": time_of(r)}));
                }
                advance(&mut stage, not_valid, "in_execution");
            }
            "control_set" | "control_removed_wrong" => {
                control = true;
                if let Some(dl) = text(d, "deadline") {
                    card.insert("deadline".into(), json!(dl));
                    history.push(json!({"deadline": dl, "kind": r.kind, "at": time_of(r)}));
                }
            }
            "control_removed" | "control_set_wrong" => control = false,
            "deadline_changed" | "deadline_prolonged" => {
                if let Some(dl) = text(d, "deadline") {
                    card.insert("deadline".into(), json!(dl));
                    history.push(json!({"deadline": dl, "kind": r.kind, "at": time_of(r)}));
                }
            }
            "finished" => {
                let at = text(d, "finished_at").unwrap_or_else(|| time_of(r));
                card.insert("finished_at".into(), json!(at));
                card.insert(
                    "result".into(),
                    json!({
                        "code": text(d, "result_code"),
                        "text": text(d, "result_text"),
                        "author": text(d, "author"),
                    }),
                );
                advance(&mut stage, not_valid, "executed");
            }
            _ => {}
        }
    }
    card.insert("stage".into(), json!(stage));
    card.insert("control".into(), json!(control));
    card.insert("deadline_history".into(), Value::Array(history));
    for key in [
        "sent_at",
        "delivered_at",
        "registered_at",
        "reg_no",
        "executor",
        "deadline",
        "finished_at",
        "result",
        "not_valid_reason",
    ] {
        card.entry(key.to_owned()).or_insert(Value::Null);
    }
    Value::Object(card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn r(kind: &str, minute: u8, data: Value) -> Receipt {
        Receipt {
            kind: kind.into(),
            at: datetime!(2026-12-01 10:00 +05:00) + time::Duration::minutes(minute.into()),
            data,
            dedup_key: Some(format!("n{minute}:{kind}")),
        }
    }

    fn full() -> Vec<Receipt> {
        vec![
            r("sent", 0, json!({})),
            r("taken_in", 1, json!({})),
            r("delivered", 2, json!({})),
            r("registered", 3, json!({"reg_no": "ВХ-17"})),
            r(
                "execution",
                4,
                json!({"executor": "Иванов И.", "executor_phone": "+7 7172 00 00 00",
                       "deadline": "2026-12-10T00:00:00.000+05:00"}),
            ),
            r(
                "control_set",
                5,
                json!({"deadline": "2026-12-10T00:00:00.000+05:00"}),
            ),
            r(
                "deadline_prolonged",
                6,
                json!({"deadline": "2026-12-20T00:00:00.000+05:00"}),
            ),
            r(
                "finished",
                7,
                json!({"result_code": "1", "result_text": "Исполнено"}),
            ),
        ]
    }

    #[test]
    fn full_sequence_fills_every_field_of_the_card() {
        let c = fold_card(&full());
        assert_eq!(c["stage"], "executed");
        assert_eq!(c["reg_no"], "ВХ-17");
        assert_eq!(c["executor"]["name"], "Иванов И.");
        assert_eq!(c["executor"]["phone"], "+7 7172 00 00 00");
        assert_eq!(c["deadline"], "2026-12-20T00:00:00.000+05:00");
        assert_eq!(c["deadline_history"].as_array().map(Vec::len), Some(3));
        assert_eq!(c["control"], true);
        assert_eq!(c["result"]["text"], "Исполнено");
        for k in ["sent_at", "delivered_at", "registered_at", "finished_at"] {
            assert!(c[k].is_string(), "{k} missing in {c}");
        }
        assert_eq!(c["not_valid_reason"], Value::Null);
    }

    #[test]
    fn stage_never_moves_backwards_under_any_reordering_or_repetition() {
        let base = full();
        // Every rotation and the reverse, plus duplicates at the end.
        let mut orders: Vec<Vec<Receipt>> = (0..base.len())
            .map(|k| {
                let mut v = base.clone();
                v.rotate_left(k);
                v
            })
            .collect();
        let mut rev = base.clone();
        rev.reverse();
        orders.push(rev);
        let mut dup = base.clone();
        dup.extend(base.iter().take(3).cloned());
        orders.push(dup);
        for order in orders {
            let mut last = 0;
            for n in 1..=order.len() {
                let c = fold_card(&order[..n]);
                let st = c["stage"].as_str().unwrap_or("");
                assert!(rank(st) >= last, "stage went back to {st} in {order:?}");
                last = rank(st);
            }
            let c = fold_card(&order);
            assert_eq!(c["stage"], "executed");
            assert_eq!(c["reg_no"], "ВХ-17");
        }
    }

    #[test]
    fn deadline_changes_apply_in_arrival_order() {
        let v = vec![
            r("deadline_prolonged", 6, json!({"deadline": "B"})),
            r("execution", 4, json!({"executor": "X", "deadline": "A"})),
        ];
        let c = fold_card(&v);
        assert_eq!(c["deadline"], "A", "the later arrival wins");
        assert_eq!(c["stage"], "in_execution");
    }

    #[test]
    fn not_valid_is_terminal_before_registration_only() {
        let early = vec![
            r("sent", 0, json!({})),
            r("not_valid", 1, json!({"reason": "signature check failed"})),
            r("delivered", 2, json!({})),
        ];
        let c = fold_card(&early);
        assert_eq!(c["stage"], "not_valid");
        assert_eq!(c["not_valid_reason"], "signature check failed");
        let late = vec![
            r("registered", 3, json!({"reg_no": "1"})),
            r("not_valid", 4, json!({"reason": "x"})),
        ];
        assert_eq!(fold_card(&late)["stage"], "registered");
    }

    #[test]
    fn wrong_control_notifications_undo_control() {
        let v = vec![
            r("control_set", 1, json!({})),
            r("control_set_wrong", 2, json!({"correction": true})),
        ];
        assert_eq!(fold_card(&v)["control"], false);
        let v = vec![
            r("control_set", 1, json!({})),
            r("control_removed", 2, json!({})),
            r("control_removed_wrong", 3, json!({"correction": true})),
        ];
        assert_eq!(fold_card(&v)["control"], true);
    }
}
