/**
 * FIDO Metadata Service (MDS3) BLOB, loaded offline from a file the operator downloads. The
 * BLOB's signature and certificate chain are verified by @simplewebauthn/server (against the
 * FIDO root it ships, or a root the operator names); Keygate then refuses to register models
 * whose latest status report says they are revoked or compromised.
 */
import { readFileSync } from 'node:fs';
import { MetadataService, SettingsService } from '@simplewebauthn/server';
import { decodeJwt } from 'jose';

/** Status reports that make a model unacceptable (FIDO Metadata Service §3.1.4 AuthenticatorStatus). */
const BAD_STATUS = new Set([
  'REVOKED',
  'USER_VERIFICATION_BYPASS',
  'ATTESTATION_KEY_COMPROMISE',
  'USER_KEY_REMOTE_COMPROMISE',
  'USER_KEY_PHYSICAL_COMPROMISE',
]);

const ICON = /^data:image\/(png|jpeg|svg\+xml);base64,[A-Za-z0-9+/=]+$/;

export class MetadataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataError';
  }
}

export interface AuthenticatorMetadata {
  /** Latest status of each AAGUID in the BLOB. */
  statusOf(aaguid: string): string | undefined;
  isRefused(aaguid: string): boolean;
  /** Model description from the BLOB, where it has one. */
  description(aaguid: string): string | undefined;
  /** The model's icon from the BLOB (a data: URL of a PNG, JPEG or SVG image), where it has one. */
  icon(aaguid: string): string | undefined;
  entries: number;
}

interface BlobEntry {
  aaguid?: string;
  metadataStatement?: { description?: string; icon?: string };
  statusReports?: { status: string; effectiveDate?: string }[];
}

/** Load and verify the BLOB; throws MetadataError naming what is wrong (the gateway does not start). */
export async function loadMetadataBlob(blobFile: string, rootCertFile?: string): Promise<AuthenticatorMetadata> {
  let blob: string;
  try {
    blob = readFileSync(blobFile, 'utf8').trim();
  } catch (e) {
    throw new MetadataError(`cannot read ${blobFile} (${(e as NodeJS.ErrnoException).code})`);
  }
  if (rootCertFile !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(rootCertFile, 'utf8');
    } catch (e) {
      throw new MetadataError(`cannot read ${rootCertFile} (${(e as NodeJS.ErrnoException).code})`);
    }
    SettingsService.setRootCertificates({ identifier: 'mds', certificates: [pem] });
  }
  // The library verifies a BLOB it fetches; a data: URL hands it the file without any network.
  const errors: string[] = [];
  await MetadataService.initialize({
    mdsServers: [`data:application/jwt;base64,${Buffer.from(blob).toString('base64')}`],
    verificationMode: 'permissive',
    logger: {
      error: (msg: string, ...args: unknown[]) => {
        const err = args[0] as (Error & { cause?: Error }) | undefined;
        errors.push([msg.replace(/ data:[^ ]*/, ''), err?.message, err?.cause?.message].filter(Boolean).join(' '));
      },
    },
  });
  if (errors.length > 0) {
    throw new MetadataError(`${blobFile}: the BLOB did not verify (${errors.join('; ')})`);
  }
  // Verified above: the payload can be read.
  const payload = decodeJwt(blob) as { entries?: BlobEntry[] };
  const status = new Map<string, string>();
  const names = new Map<string, string>();
  const icons = new Map<string, string>();
  for (const e of payload.entries ?? []) {
    if (!e.aaguid) continue;
    const reports = [...(e.statusReports ?? [])].sort((a, b) =>
      (a.effectiveDate ?? '').localeCompare(b.effectiveDate ?? ''),
    );
    const latest = reports.at(-1);
    if (latest) status.set(e.aaguid, latest.status);
    if (e.metadataStatement?.description) names.set(e.aaguid, e.metadataStatement.description);
    // Only an image as a data: URL, of bounded size: it is shown in the admin console as is.
    const icon = e.metadataStatement?.icon;
    if (typeof icon === 'string' && ICON.test(icon) && icon.length <= 65_536) icons.set(e.aaguid, icon);
  }
  return {
    statusOf: (a) => status.get(a),
    isRefused: (a) => BAD_STATUS.has(status.get(a) ?? ''),
    description: (a) => names.get(a),
    icon: (a) => icons.get(a),
    entries: status.size,
  };
}
