// The workerd floor for a proxy, for scripts/bench: a Worker that forwards
// every request to the bench mock upstream (the UPSTREAM variable) with one
// fetch subrequest and returns its response, as the gateway's Worker does in
// scenario (a) minus everything the gateway adds (parsing, routing, model
// rewrite, usage accounting, logs).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const upstream = await fetch(env.UPSTREAM + url.pathname, {
      method: request.method,
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench-upstream' },
      body: await request.arrayBuffer(),
    });
    return new Response(await upstream.arrayBuffer(), {
      status: upstream.status,
      headers: { 'content-type': upstream.headers.get('content-type') || 'application/json' },
    });
  },
};
