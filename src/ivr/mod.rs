//! The auto attendant: call flow, digit collection and guessing defence.
