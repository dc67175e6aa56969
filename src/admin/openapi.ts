/**
 * The admin API's OpenAPI 3.1 document, built from the same zod schemas the handlers validate
 * with: each route is registered through `AdminRoutes.add`, which installs the handler behind the
 * policy decision its description names and records that description — so the document cannot
 * list a route that does not exist, miss one that does, or name another policy than the one
 * enforced.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

export type AdminArea =
  | 'invitations'
  | 'users'
  | 'groups'
  | 'credentials'
  | 'sessions'
  | 'service-principals'
  | 'audit'
  | 'policy';

export interface RouteDoc {
  summary: string;
  /** The policy decision the call needs: `action` on `Keygate::<area>`. */
  action: 'admin:read' | 'admin:manage';
  area: AdminArea;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The success status and what it returns. */
  ok: { status: number; description: string };
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
/** Decides the call (throws the refusal); what it returns is handed to the handler. */
type Authorize<A> = (req: FastifyRequest, action: RouteDoc['action'], area: AdminArea) => Promise<A>;
type Handler<A> = (req: FastifyRequest, reply: FastifyReply, caller: A) => Promise<unknown>;

/** JSON Schema of a zod schema as a client sends it (inputs; transforms described by their input). */
const schemaOf = (t: z.ZodType) =>
  z.toJSONSchema(t, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;

export class AdminRoutes<A> {
  private readonly paths: Record<string, Record<string, unknown>> = {};

  constructor(
    private readonly app: FastifyInstance,
    private readonly prefix: string,
    private readonly authorize: Authorize<A>,
  ) {}

  add(method: Method, path: string, doc: RouteDoc, handler: Handler<A>): void {
    this.app.route({
      method,
      url: this.prefix + path,
      handler: async (req, reply) => handler(req, reply, await this.authorize(req, doc.action, doc.area)),
    });
    const openPath = path.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, s] of [
      ['path', doc.params],
      ['query', doc.query],
    ] as const) {
      if (s === undefined) continue;
      const js = schemaOf(s) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(js.properties ?? {})) {
        parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema });
      }
    }
    const errors = (codes: number[]) =>
      Object.fromEntries(codes.map((c) => [String(c), { $ref: `#/components/responses/E${c}` }]));
    const ops = this.paths[openPath] ?? {};
    this.paths[openPath] = ops;
    ops[method.toLowerCase()] = {
      summary: doc.summary,
      operationId: `${method.toLowerCase()}${openPath.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      'x-keygate-policy': { action: doc.action, resource: `Keygate::${doc.area}` },
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(doc.body === undefined
        ? {}
        : { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(doc.body) } } } }),
      responses: {
        [String(doc.ok.status)]: { description: doc.ok.description },
        ...errors(doc.action === 'admin:manage' ? [400, 401, 403, 404, 409] : [400, 401, 403, 404]),
      },
    };
  }

  /** The whole document. */
  document(): Record<string, unknown> {
    const error = (description: string) => ({
      description,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    });
    return {
      openapi: '3.1.0',
      info: {
        title: 'Keygate admin API',
        version: '1',
        description:
          'Users, groups, keys, sessions, service principals, federation trusts and the audit log. Every call is decided by policy (x-keygate-policy); changes need a recent login.',
      },
      servers: [{ url: this.prefix }],
      security: [{ session: [] }, { token: [] }],
      paths: this.paths,
      components: {
        securitySchemes: {
          session: { type: 'apiKey', in: 'cookie', name: 'keygate_session' },
          token: {
            type: 'http',
            scheme: 'DPoP',
            description:
              "A Keygate access token whose audience is Keygate's issuer URL (Authorization: DPoP with a proof, or Bearer for an unbound service principal token).",
          },
        },
        schemas: {
          Error: {
            type: 'object',
            required: ['error_code', 'message'],
            properties: { error_code: { type: 'string' }, message: { type: 'string' }, request_id: { type: 'string' } },
          },
        },
        responses: {
          E400: error('BAD_REQUEST: a parameter or the body is not valid; the message names it.'),
          E401: error(
            'UNAUTHENTICATED (no session, or a token not for Keygate) or FRESH_LOGIN_REQUIRED (a change needs a recent login).',
          ),
          E403: error('PERMISSION_DENIED: the policy denied the action; the message names the policy ids.'),
          E404: error('NOT_FOUND: no such user, group, key, session, trust or principal.'),
          E409: error('CONFLICT: the name is taken.'),
        },
      },
    };
  }
}
