//! Runs the conformance suite against a gateway.
//!
//! Default: starts the mock upstreams and the Lambda adapter under
//! `cargo lambda watch` on 127.0.0.1, runs every case, stops everything.
//! `GATEWAY_BASE_URL=https://…` runs the suite against a gateway that is
//! already running instead (it must use `tests/config/conformance.yaml` with
//! the mock URLs printed at start; set `CONFORMANCE_ECHO_PORT` and
//! `CONFORMANCE_OPENAI_PORT` to pin the mock ports).

use std::process::ExitCode;
use std::sync::Arc;

use gateway_tests::mocks::{closed_port, start_echo_server, start_openai_mock};
use gateway_tests::runtime::start_lambda_watch;
use gateway_tests::suite::{cases, gateway_env, Ctx};
use libtest_mimic::{Arguments, Trial};

fn port_from_env(name: &str) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    if args.list {
        let trials = cases()
            .into_iter()
            .map(|c| Trial::test(c.name, || Ok(())))
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = runtime.block_on(async {
        let echo = start_echo_server(port_from_env("CONFORMANCE_ECHO_PORT")).await?;
        let openai = start_openai_mock(port_from_env("CONFORMANCE_OPENAI_PORT")).await?;
        let down = closed_port().await?;
        Ok::<_, std::io::Error>((echo, openai, down))
    });
    let (echo, openai, down_port) = match started {
        Ok(mocks) => mocks,
        Err(e) => {
            eprintln!("cannot start the mock upstreams on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    let env = gateway_env(&echo, &openai, down_port);

    let (base_url, process) = match std::env::var("GATEWAY_BASE_URL") {
        Ok(url) => {
            eprintln!("conformance: testing the gateway at {url}; it must run with:");
            for (name, value) in &env {
                eprintln!("  {name}={value}");
            }
            (url.trim_end_matches('/').to_owned(), None)
        }
        Err(_) => {
            eprintln!("conformance: starting the Lambda adapter under cargo lambda watch…");
            match start_lambda_watch(&env) {
                Ok(process) => {
                    eprintln!(
                        "conformance: gateway ready at {} (log: {})",
                        process.base_url,
                        process.log_path.display()
                    );
                    (process.base_url.clone(), Some(process))
                }
                Err(e) => {
                    eprintln!("conformance: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };

    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("cannot build the HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Arc::new(Ctx {
        base_url,
        echo,
        openai,
        client,
        python: std::env::var_os("GATEWAY_TEST_PYTHON").map(Into::into),
    });
    let handle = runtime.handle().clone();
    let trials = cases()
        .into_iter()
        .map(|case| {
            let ctx = Arc::clone(&ctx);
            let handle = handle.clone();
            Trial::test(case.name, move || {
                handle.block_on((case.run)(&ctx)).map_err(Into::into)
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.has_failed() {
        if let Some(process) = &process {
            eprintln!(
                "--- gateway log (last 60 lines) ---\n{}",
                process.log_tail(60)
            );
        }
    }
    drop(process);
    conclusion.exit_code()
}
