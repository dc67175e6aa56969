/**
 * A software WebAuthn authenticator (ES256, CTAP2-shaped output) for protocol-level tests:
 * it produces the same JSON a browser hands to the server, and every field can be bent to
 * build the negative cases (wrong origin, wrong RP ID, missing flags, bad signature, old
 * counter, foreign user handle, …). CBOR via cbor-x, keys via node:crypto.
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
// CBOR via the same small library @simplewebauthn/server decodes with (COSE keys are Maps with integer keys).
import { encodeCBOR } from '@levischuck/tiny-cbor';

export const FLAGS = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40 } as const;

export interface StoredKey {
  id: Buffer;
  privateKey: KeyObject;
  cose: Buffer;
  userHandle: string;
  rpId: string;
  counter: number;
}

export interface BendOptions {
  origin?: string;
  type?: string;
  rpId?: string;
  challenge?: string;
  flags?: number;
  counter?: number;
  /** Sign with another key than the credential's. */
  badSignature?: boolean;
  userHandle?: string | null;
  /** Use this credential id in the response instead of the real one. */
  credentialId?: string;
  fmt?: 'none' | 'packed-self';
}

const b64u = (b: Buffer | Uint8Array) => Buffer.from(b).toString('base64url');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

export class SoftAuthenticator {
  readonly keys = new Map<string, StoredKey>();

  constructor(
    readonly origin: string,
    readonly opts: { aaguid?: string; uv?: boolean; backupEligible?: boolean; backedUp?: boolean } = {},
  ) {}

  private flags(extra = 0): number {
    let f = FLAGS.UP | extra;
    if (this.opts.uv ?? true) f |= FLAGS.UV;
    if (this.opts.backupEligible) f |= FLAGS.BE;
    if (this.opts.backedUp) f |= FLAGS.BS;
    return f;
  }

  private aaguidBytes(): Buffer {
    return Buffer.from((this.opts.aaguid ?? '00000000-0000-0000-0000-000000000000').replaceAll('-', ''), 'hex');
  }

  /** navigator.credentials.create() */
  create(options: PublicKeyCredentialCreationOptionsJSON, bend: BendOptions = {}): RegistrationResponseJSON {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = Buffer.from(
      encodeCBOR(
        new Map<number, number | Uint8Array>([
          [1, 2],
          [3, -7],
          [-1, 1],
          [-2, new Uint8Array(Buffer.from(jwk.x as string, 'base64url'))],
          [-3, new Uint8Array(Buffer.from(jwk.y as string, 'base64url'))],
        ]),
      ),
    );
    const id = bend.credentialId ? Buffer.from(bend.credentialId, 'base64url') : randomBytes(32);
    const rpId = bend.rpId ?? options.rp.id ?? new URL(this.origin).hostname;
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(id.length);
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(bend.counter ?? 0);
    const authData = Buffer.concat([
      sha256(rpId),
      Buffer.from([bend.flags ?? this.flags(FLAGS.AT)]),
      counter,
      this.aaguidBytes(),
      idLen,
      id,
      cose,
    ]);
    const clientDataJSON = Buffer.from(
      JSON.stringify({
        type: bend.type ?? 'webauthn.create',
        challenge: bend.challenge ?? options.challenge,
        origin: bend.origin ?? this.origin,
        crossOrigin: false,
      }),
    );
    let fmt = 'none';
    const attStmt = new Map<string, number | Uint8Array>();
    if (bend.fmt === 'packed-self') {
      fmt = 'packed';
      attStmt.set('alg', -7);
      attStmt.set('sig', new Uint8Array(sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), privateKey)));
    }
    const attestationObject = Buffer.from(
      encodeCBOR(
        new Map<string, string | Map<string, number | Uint8Array> | Uint8Array>([
          ['fmt', fmt],
          ['attStmt', attStmt],
          ['authData', new Uint8Array(authData)],
        ]),
      ),
    );
    this.keys.set(b64u(id), {
      id,
      privateKey,
      cose,
      userHandle: options.user.id,
      rpId,
      counter: bend.counter ?? 0,
    });
    return {
      id: b64u(id),
      rawId: b64u(id),
      type: 'public-key',
      response: {
        clientDataJSON: b64u(clientDataJSON),
        attestationObject: b64u(attestationObject),
        transports: ['usb'],
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'cross-platform',
    };
  }

  /** navigator.credentials.get(): uses an allowed credential, else any discoverable one for the RP. */
  get(options: PublicKeyCredentialRequestOptionsJSON, bend: BendOptions = {}): AuthenticationResponseJSON {
    const allowed = (options.allowCredentials ?? []).map((c) => c.id);
    const key =
      (bend.credentialId ? this.keys.get(bend.credentialId) : undefined) ??
      [...this.keys.values()].find((k) =>
        allowed.length === 0 ? k.rpId === options.rpId : allowed.includes(b64u(k.id)),
      );
    if (!key) throw new Error('NotAllowedError: no credential');
    key.counter = bend.counter ?? key.counter + 1;
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(key.counter);
    const authData = Buffer.concat([sha256(bend.rpId ?? key.rpId), Buffer.from([bend.flags ?? this.flags()]), counter]);
    const clientDataJSON = Buffer.from(
      JSON.stringify({
        type: bend.type ?? 'webauthn.get',
        challenge: bend.challenge ?? options.challenge,
        origin: bend.origin ?? this.origin,
        crossOrigin: false,
      }),
    );
    const signer = bend.badSignature ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey : key.privateKey;
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientDataJSON)]), signer);
    const userHandle = bend.userHandle === undefined ? key.userHandle : bend.userHandle;
    const id = bend.credentialId ?? b64u(key.id);
    return {
      id,
      rawId: id,
      type: 'public-key',
      response: {
        clientDataJSON: b64u(clientDataJSON),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        ...(userHandle === null ? {} : { userHandle }),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'cross-platform',
    };
  }
}
