// @databricks/ai-sdk-provider with ai@6 as a real streaming client of the chat endpoint.
import { createDatabricksProvider } from '@databricks/ai-sdk-provider';
import { generateText, streamText } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replyText } from '../chat.js';
import { DEMO_PAT, demoSimOptions, type Simulator, startSimulator } from '../index.js';

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator(demoSimOptions());
});
afterAll(() => sim.close());

const model = (token = DEMO_PAT) =>
  createDatabricksProvider({ baseURL: `${sim.url}/serving-endpoints`, headers: { Authorization: `Bearer ${token}` } }).chatCompletions('chat-llm');

describe('AI SDK provider', () => {
  it('streamText yields the deterministic reply and finishReason stop', async () => {
    const result = streamText({ model: model(), prompt: 'What is an iris?' });
    let text = '';
    for await (const delta of result.textStream) text += delta;
    const expected = replyText('chat-llm', 'What is an iris?');
    // An empty string here would mean chunks failed the provider's schema (databricks-js-sdk.md §6).
    expect(text.length).toBeGreaterThan(0);
    expect(text).toBe(expected);
    expect(await result.finishReason).toBe('stop');
    expect((await result.usage).outputTokens).toBe(expected.split(' ').length);
    const rec = sim.requests.at(-1);
    expect(rec).toMatchObject({ method: 'POST', path: '/serving-endpoints/chat/completions', status: 200, identity: 'alice@example.com' });
  });

  it('generateText (non-streaming) returns the same reply', async () => {
    const result = await generateText({ model: model(), prompt: 'Hello there' });
    expect(result.text).toBe(replyText('chat-llm', 'Hello there'));
    expect(result.finishReason).toBe('stop');
  });

  it('a bad token surfaces as an API call error, not empty text', async () => {
    await expect(generateText({ model: model('bad-token'), prompt: 'x', maxRetries: 0 })).rejects.toThrow(/Invalid access token/);
  });
});
