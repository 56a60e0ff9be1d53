//! In-process gateway overhead: `Gateway::handle` on the in-memory platform,
//! no sockets. Run: `cargo bench -p gateway-core --features test-util`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_executor::block_on;
use futures_util::StreamExt;
use gateway_core::testing::{FakeHttp, FakeReply, TestPlatform};
use gateway_core::{Body, Config, Gateway};
use http::{Request, Response};

const CONFIG: &str = r"
providers:
  mock: { kind: mock }
models:
  - { name: mock-gpt, provider: mock }
routes:
  - name: ai
    match: { path_prefix: /v1 }
    ai: {}
  - name: rest
    match: { path_prefix: /api, methods: [GET, POST] }
    proxy: { url: 'http://upstream.internal/base', strip_prefix: true }
";

fn gateway() -> Gateway<TestPlatform> {
    let config = Config::from_yaml(CONFIG, |_| None).expect("bench config");
    let http =
        FakeHttp::unrecorded(|_| FakeReply::Respond(Response::new(Body::from("{\"ok\":true}"))));
    Gateway::new(config, TestPlatform::new(http))
}

fn drain(response: Response<Body>) -> usize {
    block_on(
        response
            .into_body()
            .map(|c| c.map_or(0, |b| b.len()))
            .fold(0, |a, n| async move { a + n }),
    )
}

fn bench_handle(c: &mut Criterion) {
    let gw = gateway();
    c.bench_function("proxy_get_round_trip", |b| {
        b.iter(|| {
            let request = Request::get("/api/items/42?x=1")
                .header("host", "gw.example")
                .body(Bytes::new())
                .expect("request");
            drain(block_on(gw.handle(request)))
        });
    });
    let chat = Bytes::from_static(
        br#"{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello"}]}"#,
    );
    c.bench_function("mock_chat_completion", |b| {
        b.iter(|| {
            let request = Request::post("/v1/chat/completions")
                .body(chat.clone())
                .expect("request");
            drain(block_on(gw.handle(request)))
        });
    });
    c.bench_function("route_not_found", |b| {
        b.iter(|| {
            let request = Request::get("/nope").body(Bytes::new()).expect("request");
            drain(block_on(gw.handle(request)))
        });
    });
}

criterion_group!(benches, bench_handle);
criterion_main!(benches);
