//! Email notices with a durable outbox.
