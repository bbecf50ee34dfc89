//! SIP (RFC 3261): messages, URIs, SDP, transactions, dialogs, the user
//! agent core and the transport shells.

pub mod dialog;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod ua;
pub mod uri;
