//! The tokio shell of the call path.
