//! Generic HTTP/JSON target: POSTs a message as JSON to a configured URL.
