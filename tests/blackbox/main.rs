//! Black-box tests: the real binaries, a fresh database each, HTTP on a free port.

mod bad_input;
mod contacts;
mod conversations;
mod demo;
mod faults;
mod foundation;
mod handover;
mod kapso;
mod limits;
mod live;
mod openapi;
mod permissions;
mod readme;
mod sending;
mod webhook;
