//! Hostile input never panics the readers: thousands of deterministic mutations and truncations
//! of valid envelopes go through every reader, which must answer Ok or Err and nothing else.

use qaqpa_shep::async_channel::{self, GetMessagesResponse, Operation};
use qaqpa_shep::*;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: [&str; 12] = [
    "<",
    ">",
    "/",
    "\"",
    "&amp;",
    "&#0;",
    "<![CDATA[",
    "]]>",
    "xmlns:a=\"\"",
    "<!DOCTYPE x>",
    "\u{0}",
    "Ә",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s = text.to_owned();
    for _ in 0..(1 + rng.below(4)) {
        let mut at = rng.below(s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(3) {
            0 => s.truncate(at),
            1 => s.insert_str(at, PIECES[rng.below(PIECES.len())]),
            _ => {
                let mut end = (at + 1 + rng.below(16)).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.replace_range(at..end.max(at), "");
            }
        }
    }
    s
}

#[test]
fn mutated_envelopes_never_panic_a_reader() {
    let limits = XmlLimits::default();
    let request = SyncRequest::new(
        "S",
        SenderInfo::new("q", Some("p".into())),
        Some(MessageData::text("<a>1</a>")),
    )
    .with_property(Property::new("k", "v").expect("p"))
    .to_envelope()
    .expect("builds");
    let response = SyncResponse::success(Some(
        MessageData::xml("<r xmlns=\"urn:r\"><x/></r>", None).expect("xml"),
    ))
    .to_envelope()
    .expect("builds");
    let messages = async_channel::response_envelope(
        Operation::GetMessages,
        ns::ASYNC,
        &GetMessagesResponse {
            response_date: time::OffsetDateTime::UNIX_EPOCH,
            session_id: SessionId::random(),
            messages: vec![AsyncMessage::request(
                "S",
                SenderInfo::new("q", None),
                MessageData::text("d"),
            )],
        },
    )
    .expect("builds");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut refused = 0usize;
    for i in 0..3000 {
        let base = [&request, &response, &messages][i % 3];
        let input = mutate(&mut rng, base);
        let a = SyncRequest::from_envelope(&input, &limits);
        let b = SyncReply::from_envelope(&input, &limits);
        let c = async_channel::read_reply::<GetMessagesResponse>(
            Operation::GetMessages,
            &input,
            &limits,
        );
        let _ = classify_reply(500, None, &input, &limits);
        if a.is_err() && b.is_err() && c.is_err() {
            refused += 1;
        }
    }
    // The mutations must actually break things, or this test proves nothing.
    assert!(
        refused > 1500,
        "only {refused} of 3000 mutations were refused"
    );
}
