// The `chat-llm` endpoint: an OpenAI-style chat completion whose reply is derived
// deterministically from the last user message, so tests can assert the exact text.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SimContext } from './context.js';
import { badRequest, invalidParam } from './errors.js';
import { isObject, type Json, ok, optBool, optInt, optNum, type Reply } from './http.js';

interface ChatRequest {
  messages: { role: string; text: string }[];
  maxTokens: number | undefined;
  stream: boolean;
}

const ROLES = new Set(['system', 'user', 'assistant', 'tool']);

/** The exact reply text for a conversation; exported so tests state expectations once. */
export function replyText(model: string, lastUserMessage: string): string {
  return `Hello from ${model}! You said: ${lastUserMessage}`;
}

export function parseChat(body: Json): ChatRequest {
  const raw = body.messages;
  if (!Array.isArray(raw) || raw.length === 0) throw badRequest("'messages' must be a non-empty array.");
  const messages = raw.map((m, i) => {
    if (!isObject(m) || typeof m.role !== 'string' || !ROLES.has(m.role)) {
      throw badRequest(`messages[${i}] must have a role of system, user, assistant or tool.`);
    }
    return { role: m.role, text: contentText(m.content, i) };
  });
  const maxTokens = optInt(body, 'max_tokens');
  if (maxTokens !== undefined && maxTokens < 1) throw invalidParam("'max_tokens' must be at least 1.");
  const temperature = optNum(body, 'temperature');
  if (temperature !== undefined && (temperature < 0 || temperature > 2)) throw invalidParam("'temperature' must be between 0 and 2.");
  return { messages, maxTokens, stream: optBool(body, 'stream') ?? false };
}

/** Content is a string, or (as the AI SDK provider sends it) an array of text parts. */
function contentText(content: unknown, i: number): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part, j) => {
        if (isObject(part) && (part.type === 'text' || part.type === 'input_text') && typeof part.text === 'string') return part.text;
        throw badRequest(`messages[${i}].content[${j}] must be a text part; the simulator supports text only.`);
      })
      .join('');
  }
  throw badRequest(`messages[${i}].content must be a string or an array of text parts.`);
}

/** Answers a chat request as JSON, or as SSE `chat.completion.chunk` events when `stream` is true. */
export function chatCompletion(ctx: SimContext, model: string, servedModel: string, body: Json): Reply {
  const req = parseChat(body);
  const lastUser = [...req.messages].reverse().find((m) => m.role === 'user');
  if (!lastUser) throw badRequest("'messages' must contain a user message.");

  // "Tokens" are whitespace-delimited words; max_tokens truncates and yields finish_reason 'length'.
  const words = replyText(model, lastUser.text).match(/\S+\s*/g) ?? [];
  const pieces = req.maxTokens !== undefined ? words.slice(0, req.maxTokens) : words;
  const finishReason = pieces.length < words.length ? 'length' : 'stop';
  const promptTokens = req.messages.reduce((n, m) => n + (m.text.match(/\S+/g)?.length ?? 0), 0);
  const usage = { prompt_tokens: promptTokens, completion_tokens: pieces.length, total_tokens: promptTokens + pieces.length };
  const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
  const created = Math.floor(ctx.now() / 1000);
  const headers = { 'served-model-name': servedModel };

  if (!req.stream) {
    return ok(
      {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: pieces.join('') }, finish_reason: finishReason }],
        usage,
      },
      headers,
    );
  }

  const chunk = (delta: Json, finish: string | null, extra: Json = {}): string =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
  const events = [
    ...pieces.map((p, i) => chunk(i === 0 ? { role: 'assistant', content: p } : { content: p }, null)),
    chunk({}, finishReason, { usage }),
    'data: [DONE]\n\n',
  ];
  return {
    status: 200,
    headers: { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' },
    async stream(out) {
      for (const [i, event] of events.entries()) {
        if (i > 0 && ctx.streamChunkDelayMs > 0) await sleep(ctx.streamChunkDelayMs);
        if (out.closed) return;
        out.write(event);
      }
    },
  };
}
