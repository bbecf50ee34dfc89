//! SIP: messages, URIs, SDP, transactions, dialogs and the user agent core.
