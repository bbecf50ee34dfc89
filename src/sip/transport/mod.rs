//! UDP and TCP transport shells (RFC 3261 §18).
