//! Runs the conformance suite against every runtime.
//!
//! Default: starts the mock upstreams, then the Lambda adapter under
//! `cargo lambda watch`, the same binary as a native HTTP server, and the
//! Worker under `wrangler dev --local`, all on 127.0.0.1; runs every case
//! against each (`lambda::<case>`, `native::<case>`, `worker::<case>`);
//! stops everything. `CONFORMANCE_RUNTIMES=lambda,native` (or any subset)
//! picks some. `GATEWAY_BASE_URL=https://…` runs the suite against
//! a gateway that is already running instead (it must use
//! `tests/config/conformance.yaml` with the variables printed at start;
//! `CONFORMANCE_ECHO_PORT` and `CONFORMANCE_OPENAI_PORT` pin the mock ports).

use std::process::ExitCode;
use std::sync::Arc;

use gateway_tests::mocks::{
    closed_port, start_echo_server, start_openai_mock, EchoServer, OpenAiMock,
};
use gateway_tests::runtime::{
    start_aws_emulator, start_lambda_watch, start_native, start_wrangler_dev, GatewayProcess,
};
use gateway_tests::suite::{
    cases, conformance_config_path, lambda_cases, upstream_env, worker_cases, Case, Ctx,
    EXCLUSIVE_CASES,
};
use libtest_mimic::{Arguments, Failed, Trial};

const RUNTIMES: [&str; 3] = ["lambda", "native", "worker"];

fn port_from_env(name: &str) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn cases_for(runtime: &str) -> Vec<Case> {
    let mut all = cases();
    match runtime {
        "lambda" | "native" => all.extend(lambda_cases()),
        "worker" => all.extend(worker_cases()),
        _ => {}
    }
    all
}

fn selected_runtimes() -> Vec<String> {
    std::env::var("CONFORMANCE_RUNTIMES")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_else(|_| RUNTIMES.iter().map(|s| (*s).to_owned()).collect())
}

/// Starts one runtime with the conformance config: the Lambda adapter with
/// its key store on a DynamoDB emulator (moto), the native server in memory, the Worker with local KV and
/// Durable Objects. Returns the gateway and the helper processes it needs.
fn start(
    runtime: &str,
    upstream: &[(String, String)],
) -> Result<(GatewayProcess, Vec<GatewayProcess>), String> {
    let config = conformance_config_path();
    let mut env = upstream.to_vec();
    match runtime {
        "lambda" => {
            // The provider key reaches the Lambda only through SSM, as in a
            // deployment: the upstream cases then prove the cold-start load.
            let key_name = "CONFORMANCE_OPENAI_KEY";
            let key = env
                .iter()
                .find(|(name, _)| name == key_name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            env.retain(|(name, _)| name != key_name);
            let parameters = [(format!("/gateway-conformance/{key_name}"), key)];
            let dynamo = start_aws_emulator("gateway-conformance", &parameters)?;
            let endpoint = dynamo.endpoint.clone();
            env.extend([
                (
                    "GATEWAY_CONFIG_PATH".to_owned(),
                    config.display().to_string(),
                ),
                ("GATEWAY_STORE".to_owned(), "dynamodb".to_owned()),
                ("GATEWAY_TABLE".to_owned(), dynamo.table.clone()),
                (
                    "GATEWAY_SSM_PREFIX".to_owned(),
                    "/gateway-conformance/".to_owned(),
                ),
                ("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), endpoint.clone()),
                ("AWS_ENDPOINT_URL_SSM".to_owned(), endpoint),
            ]);
            Ok((start_lambda_watch(&env)?, vec![dynamo.process]))
        }
        // The native server with the in-memory store and the provider key
        // from its environment (the Lambda run covers DynamoDB and SSM).
        "native" => {
            env.push((
                "GATEWAY_CONFIG_PATH".to_owned(),
                config.display().to_string(),
            ));
            Ok((start_native(&env)?, Vec::new()))
        }
        "worker" => {
            let yaml = std::fs::read_to_string(&config)
                .map_err(|e| format!("{}: {e}", config.display()))?;
            env.push(("GATEWAY_CONFIG".into(), yaml));
            Ok((start_wrangler_dev(&env)?, Vec::new()))
        }
        other => Err(format!(
            "unknown runtime `{other}` (known: {})",
            RUNTIMES.join(", ")
        )),
    }
}

type Started = (String, Option<GatewayProcess>, Vec<GatewayProcess>);

struct Target {
    name: String,
    /// The gateway, or why it could not start (then every case fails with it).
    started: Result<Started, String>,
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let external = std::env::var("GATEWAY_BASE_URL").ok();
    let runtimes = if external.is_some() {
        vec!["external".to_owned()]
    } else {
        selected_runtimes()
    };
    if args.list {
        let trials = runtimes
            .iter()
            .flat_map(|r| {
                cases_for(r)
                    .into_iter()
                    .map(move |c| Trial::test(format!("{r}::{}", c.name), || Ok(())))
            })
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
    let mocks = runtime.block_on(async {
        let echo = start_echo_server(port_from_env("CONFORMANCE_ECHO_PORT")).await?;
        let openai = start_openai_mock(port_from_env("CONFORMANCE_OPENAI_PORT")).await?;
        let down = closed_port().await?;
        Ok::<(EchoServer, OpenAiMock, u16), std::io::Error>((echo, openai, down))
    });
    let (echo, openai, down_port) = match mocks {
        Ok(mocks) => mocks,
        Err(e) => {
            eprintln!("cannot start the mock upstreams on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    let upstream = upstream_env(&echo, &openai, down_port);

    // Start the runtimes side by side: the Worker's first build takes minutes.
    let targets: Vec<Target> = match &external {
        Some(url) => {
            eprintln!("conformance: testing the gateway at {url}; it must run tests/config/conformance.yaml with:");
            for (name, value) in &upstream {
                eprintln!("  {name}={value}");
            }
            vec![Target {
                name: "external".into(),
                started: Ok((url.trim_end_matches('/').to_owned(), None, Vec::new())),
            }]
        }
        None => std::thread::scope(|scope| {
            let handles: Vec<_> = runtimes
                .iter()
                .map(|name| {
                    let upstream = &upstream;
                    scope.spawn(move || {
                        eprintln!("conformance: starting {name}…");
                        let started = start(name, upstream).map(|(p, helpers)| {
                            eprintln!(
                                "conformance: {name} ready at {} (log: {})",
                                p.base_url,
                                p.log_path.display()
                            );
                            (p.base_url.clone(), Some(p), helpers)
                        });
                        if let Err(e) = &started {
                            eprintln!("conformance: {name} failed to start: {e}");
                        }
                        Target {
                            name: name.clone(),
                            started,
                        }
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        }),
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
    let python = std::env::var_os("GATEWAY_TEST_PYTHON").map(Into::into);
    let handle = runtime.handle().clone();
    let mut trials = Vec::new();
    let mut exclusive_trials = Vec::new();
    for target in &targets {
        let ctx = match &target.started {
            Ok((base_url, process, _)) => Ok(Arc::new(Ctx {
                base_url: base_url.clone(),
                echo: echo.clone(),
                openai: openai.clone(),
                client: client.clone(),
                python: python.clone(),
                log_path: process.as_ref().map(|p| p.log_path.clone()),
            })),
            Err(e) => Err(e.clone()),
        };
        for case in cases_for(&target.name) {
            let name = format!("{}::{}", target.name, case.name);
            let handle = handle.clone();
            let ctx = ctx.clone();
            let batch = if EXCLUSIVE_CASES.contains(&case.name) {
                &mut exclusive_trials
            } else {
                &mut trials
            };
            batch.push(Trial::test(name, move || match ctx {
                Ok(ctx) => handle.block_on((case.run)(&ctx)).map_err(Failed::from),
                Err(e) => Err(Failed::from(format!("the runtime did not start: {e}"))),
            }));
        }
    }
    let mut conclusion = libtest_mimic::run(&args, trials);
    // Then the cases that must not overlap others, one at a time.
    let mut alone = args.clone();
    alone.test_threads = Some(1);
    let exclusive = libtest_mimic::run(&alone, exclusive_trials);
    conclusion.num_passed += exclusive.num_passed;
    conclusion.num_failed += exclusive.num_failed;
    conclusion.num_filtered_out += exclusive.num_filtered_out;
    if conclusion.has_failed() {
        for target in &targets {
            if let Ok((_, Some(process), _)) = &target.started {
                eprintln!(
                    "--- {} log (last 60 lines) ---\n{}",
                    target.name,
                    process.log_tail(60)
                );
            }
        }
    }
    drop(targets);
    conclusion.exit_code()
}
