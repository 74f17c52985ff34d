//! Read models: how each event changes them, and the queries over them.
//!
//! Empty until the fan-out (relay → NATS → projection builders) arrives; until then the API
//! reads aggregates straight from the event store.
