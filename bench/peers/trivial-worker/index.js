// The workerd floor for scripts/bench: a Worker that answers every request
// with a fixed chat completion, run under the same wrangler dev as the
// gateway's Worker.
const REPLY = JSON.stringify({
  id: 'chatcmpl-trivial', object: 'chat.completion', created: 1764460800, model: 'trivial',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

export default {
  async fetch(request) {
    await request.arrayBuffer();
    return new Response(REPLY, { headers: { 'content-type': 'application/json' } });
  },
};
