// The real `openai` npm client against a running `rat serve`: completions,
// chat, streaming (completions and chat, with usage) and logprobs, plus the
// client-side view of errors (unknown model, wrong API key).
// usage: node openai_client.mjs BASE_URL API_KEY MODEL_ID
// Prints "openai client: N checks passed" and exits 0, or lists failures and exits 1.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, timeout: 60000, maxRetries: 0 });
const failures = [];
let checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) {
    failures.push(what);
    console.log("FAIL:", what);
  }
}

const prompt = "The pass key is";

// Models.
const models = await client.models.list();
check(models.data.some((m) => m.id === model), `models.list has ${model}: ${JSON.stringify(models.data)}`);

// A greedy completion.
const c = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0 });
check(c.object === "text_completion" && c.choices.length === 1, "completion object");
const text = c.choices[0].text;
check(typeof text === "string" && text.length > 0, `completion text: ${JSON.stringify(text)}`);
check(["stop", "length"].includes(c.choices[0].finish_reason), "finish_reason");
check(c.usage.completion_tokens > 0 && c.usage.completion_tokens <= 8, "usage.completion_tokens");
check(c.usage.total_tokens === c.usage.prompt_tokens + c.usage.completion_tokens, "usage total");

// Logprobs: greedy picks the most likely token, so each chosen token's
// log-probability is the largest of its alternatives, and all are <= 0.
const lp = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0, logprobs: 3 });
const L = lp.choices[0].logprobs;
check(lp.choices[0].text === text, "logprobs do not change the greedy text");
check(L && L.tokens.length === L.token_logprobs.length && L.tokens.length === L.top_logprobs.length,
      "logprobs arrays of one length");
check(L.tokens.join("") .length >= 0 && L.tokens.length >= 1, "logprobs tokens");
for (let i = 0; i < L.tokens.length; i++) {
  const alts = Object.values(L.top_logprobs[i]);
  check(alts.length >= 1 && alts.length <= 3, `top_logprobs[${i}] has 1..3 entries`);
  check(L.token_logprobs[i] <= 0, `token_logprobs[${i}] <= 0`);
  check(Math.abs(Math.max(...alts) - L.token_logprobs[i]) < 1e-5,
        `greedy token ${i} is the most likely: ${L.token_logprobs[i]} vs ${JSON.stringify(L.top_logprobs[i])}`);
}
check(L.text_offset[0] === 0, "text_offset starts at 0");

// Streaming a completion gives the same text, chunk by chunk.
const stream = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0, stream: true });
let streamed = "", chunks = 0, finish = null;
for await (const ch of stream) {
  chunks++;
  streamed += ch.choices[0]?.text ?? "";
  if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
}
check(streamed === text, `streamed text ${JSON.stringify(streamed)} == ${JSON.stringify(text)}`);
check(chunks >= 2 && finish === c.choices[0].finish_reason, `stream chunks ${chunks}, finish ${finish}`);

// Chat, whole and streamed (with usage in the last chunk).
const messages = [{ role: "system", content: "Keys." }, { role: "user", content: "What is the pass key?" }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0 });
check(chat.object === "chat.completion" && chat.choices[0].message.role === "assistant", "chat object");
const answer = chat.choices[0].message.content;
check(typeof answer === "string", "chat content");
const cs = await client.chat.completions.create({
  model, messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let chatStreamed = "", usage = null, role = null;
for await (const ch of cs) {
  if (ch.usage) usage = ch.usage;
  const d = ch.choices[0]?.delta;
  if (d?.role) role = d.role;
  chatStreamed += d?.content ?? "";
}
check(chatStreamed === answer, `chat stream ${JSON.stringify(chatStreamed)} == ${JSON.stringify(answer)}`);
check(role === "assistant", "chat stream role");
check(usage && usage.completion_tokens === chat.usage.completion_tokens &&
      usage.prompt_tokens === chat.usage.prompt_tokens, `stream usage ${JSON.stringify(usage)}`);

// Chat logprobs.
const cl = await client.chat.completions.create({ model, messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 2 });
const content = cl.choices[0].logprobs?.content ?? [];
check(content.length >= 1 && content.every((t) => t.top_logprobs.length === 2 && t.logprob <= 0 &&
      Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5), "chat logprobs");

// Sampling with a seed is reproducible; n gives n choices.
const s1 = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 1, seed: 7, n: 3 });
const s2 = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 1, seed: 7, n: 3 });
check(s1.choices.length === 3 && s1.choices.map((x) => x.index).join() === "0,1,2", "n = 3 choices");
check(JSON.stringify(s1.choices.map((x) => x.text)) === JSON.stringify(s2.choices.map((x) => x.text)),
      "same seed, same samples");

// Errors as the client sees them.
try {
  await client.completions.create({ model: "no-such-model", prompt, max_tokens: 2 });
  check(false, "unknown model accepted");
} catch (e) {
  check(e.status === 404 && e.code === "model_not_found" && e.param === "model", `unknown model: ${e}`);
}
try {
  await client.completions.create({ model, prompt, max_tokens: 2, temperature: 5 });
  check(false, "temperature 5 accepted");
} catch (e) {
  check(e.status === 400 && e.param === "temperature" && e.type === "invalid_request_error",
        `bad temperature: ${e}`);
}
const wrongKey = new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 });
try {
  await wrongKey.models.list();
  check(false, "a wrong API key was accepted");
} catch (e) {
  check(e.status === 401, `wrong key: ${e}`);
}

if (failures.length) {
  console.log(`openai client: ${failures.length} of ${checks} checks failed`);
  process.exit(1);
}
console.log(`openai client: ${checks} checks passed`);
