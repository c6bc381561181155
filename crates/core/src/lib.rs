//! Message model and the adapter contract shared by the gateway and every adapter. No I/O here.
