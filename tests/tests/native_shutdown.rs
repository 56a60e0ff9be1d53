//! The native server's shutdown, as a container runtime drives it: SIGTERM
//! while a request is in flight. The request still gets its full reply, the
//! process exits 0, and the log holds that request's access line.
//!
//! Needs the `gateway` binary (`cargo build -p gateway-aws-lambda --bin
//! gateway`, which `scripts/test` does).

use std::time::Duration;

use gateway_tests::mocks::{closed_port, start_echo_server, start_openai_mock, SLOW_DELAY};
use gateway_tests::runtime::{start_native, GatewayProcess};
use gateway_tests::suite::{conformance_config_path, upstream_env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish_and_keeps_its_log_line() -> Result<(), String> {
    let echo = start_echo_server(0).await.map_err(|e| e.to_string())?;
    let openai = start_openai_mock(0).await.map_err(|e| e.to_string())?;
    let mut env = upstream_env(
        &echo,
        &openai,
        closed_port().await.map_err(|e| e.to_string())?,
    );
    env.push((
        "GATEWAY_CONFIG_PATH".to_owned(),
        conformance_config_path().display().to_string(),
    ));
    env.push(("GATEWAY_THREADS".to_owned(), "2".to_owned()));
    // start_native and wait_exit poll and sleep: block_in_place lets them
    // hold this worker thread while the other one serves the mocks.
    let mut gateway = tokio::task::block_in_place(|| start_native(&env))?;
    let read_log = |gateway: &GatewayProcess| {
        std::fs::read_to_string(&gateway.log_path).unwrap_or_else(|e| e.to_string())
    };

    // The echo upstream answers /slow after SLOW_DELAY (3 s); the `echo`
    // route has no timeout of its own.
    let url = format!("{}/echo/slow", gateway.base_url);
    let in_flight = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(url)
            .header("x-request-id", "drain-in-flight-1")
            .send()
            .await
            .map_err(|e| format!("the request in flight failed: {e}"))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway.terminate()?;

    let (status, body) = in_flight.await.map_err(|e| e.to_string())??;
    if status != 200 || !body.contains(r#""path":"/slow""#) {
        return Err(format!(
            "the request in flight did not get its reply: {status} {body}\n{}",
            read_log(&gateway)
        ));
    }
    let exited =
        tokio::task::block_in_place(|| gateway.wait_exit(SLOW_DELAY + Duration::from_secs(10)))?;
    let log = read_log(&gateway);
    if !exited.success() {
        return Err(format!(
            "the server exited with {exited} after SIGTERM:\n{log}"
        ));
    }
    let access_line = log
        .lines()
        .any(|line| line.contains(r#""message":"request""#) && line.contains("drain-in-flight-1"));
    if !access_line {
        return Err(format!(
            "no access log line for the request in flight (request id drain-in-flight-1):\n{log}"
        ));
    }
    if !log.contains("draining open connections") {
        return Err(format!("the server did not say it was draining:\n{log}"));
    }
    Ok(())
}
