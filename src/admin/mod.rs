//! Admin HTTP API and its CLI client.
