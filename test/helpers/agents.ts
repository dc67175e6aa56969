/** The agent's side of a delegation, as an agent script does it over HTTP. */
import { request } from 'undici';
import { DELEGATION_TOKEN_TYPE } from '../../src/agents/grants.js';

/** Trade a delegation grant for a token at the token endpoint, authenticating as the agent (client_secret_basic). */
export async function exchangeGrant(
  baseUrl: string,
  agent: { id: string; secret: string },
  grantId: string,
  scope?: string,
): Promise<{ status: number; body: Record<string, string> }> {
  const r = await request(`${baseUrl}/.keygate/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${agent.id}:${agent.secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: grantId,
      subject_token_type: DELEGATION_TOKEN_TYPE,
      ...(scope === undefined ? {} : { scope }),
    }).toString(),
  });
  return { status: r.statusCode, body: (await r.body.json()) as Record<string, string> };
}
