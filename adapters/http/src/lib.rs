//! Generic HTTP/JSON target: [`HttpAdapter`] POSTs each message as one JSON document
//! ([`wire::WireMessage`]) to the URL in the route's settings, and reads the answer's status to
//! decide between delivered, retry and permanent failure. [`emulator`] is a stand-in target with
//! fault injection, for the sandbox and for tests.
//!
//! The adapter must never keep state about a message between attempts and never retry on its
//! own: one call of `deliver` is one attempt; the engine decides what happens next.

pub mod adapter;
pub mod emulator;
pub mod settings;
pub mod wire;

pub use adapter::{HttpAdapter, HttpAdapterError};
pub use emulator::{Emulator, EmulatorHandle, EmulatorState, Faults, Received, ReceivedMessage};
pub use settings::HttpSettings;
pub use wire::{WireAttachment, WireMessage};
