//! End-to-end test harness: mock upstreams, launchers for each runtime's
//! local emulator, and the conformance suite run against all of them.

pub mod adversary;
pub mod agent_mock;
pub mod bedrock_mock;
pub mod endpoints_mock;
pub mod mocks;
pub mod responses_mock;
pub mod runtime;
pub mod suite;
