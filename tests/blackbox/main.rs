//! Black-box tests: the real binaries, a fresh database each, HTTP on a free port.

mod bad_input;
mod contacts;
mod conversations;
mod foundation;
mod handover;
mod kapso;
mod live;
mod openapi;
mod permissions;
mod sending;
mod webhook;
