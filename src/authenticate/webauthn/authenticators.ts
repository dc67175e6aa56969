/**
 * Authenticator models by AAGUID, for the devices page and auth events. A short list of
 * well-known models; anything else is shown as unknown. (An operator with a FIDO MDS BLOB
 * gets names for every certified model from it.)
 */
const KNOWN: Record<string, string> = {
  'cb69481e-8ff7-4039-93ec-0a2729a154a8': 'YubiKey 5 Series',
  'ee882879-721c-4913-9775-3dfcce97072a': 'YubiKey 5 Series (NFC)',
  'fa2b99dc-9e39-4257-8f92-4a30d23c4118': 'YubiKey 5 Series (NFC)',
  '2fc0579f-8113-47ea-b116-bb5a8db9202a': 'YubiKey 5 Series (NFC)',
  'c5ef55ff-ad9a-4b9f-b580-adebafe026d0': 'YubiKey 5Ci',
  'd8522d9f-575b-4866-88a9-ba99fa02f35b': 'YubiKey Bio Series',
  'fbfc3007-154e-4ecc-8c0b-6e020557d7bd': 'iCloud Keychain',
  'dd4ec289-e01d-41c9-bb89-70fa845d4bf2': 'iCloud Keychain (Managed)',
  'ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4': 'Google Password Manager',
  'adce0002-35bc-c60a-648b-0b25f1f05503': 'Chrome on Mac',
  '08987058-cadc-4b81-b6e1-30de50dcbe96': 'Windows Hello',
  '9ddd1817-af5a-4672-a2b9-3e3dd95000a9': 'Windows Hello',
  '6028b017-b1d4-4c02-b4b3-afcdafc96bb2': 'Windows Hello',
  'bada5566-a7aa-401f-bd96-45619a55120d': '1Password',
  'd548826e-79b4-db40-a3d8-11116f7e8349': 'Bitwarden',
  '531126d6-e717-415c-9320-3d9aa6981239': 'Dashlane',
  '01020304-0506-0708-0102-030405060708': 'Chromium virtual authenticator',
  '00000000-0000-0000-0000-000000000000': 'Unknown authenticator',
};

export function authenticatorName(aaguid: string): string {
  return KNOWN[aaguid] ?? 'Unknown authenticator';
}

/** What kind of authenticator a model is, for the console's icon where the BLOB has none. */
export type AuthenticatorKind = 'security-key' | 'platform' | 'password-manager' | 'virtual' | 'unknown';

const KIND: Record<string, AuthenticatorKind> = {
  'YubiKey 5 Series': 'security-key',
  'YubiKey 5 Series (NFC)': 'security-key',
  'YubiKey 5Ci': 'security-key',
  'YubiKey Bio Series': 'security-key',
  'iCloud Keychain': 'platform',
  'iCloud Keychain (Managed)': 'platform',
  'Google Password Manager': 'platform',
  'Chrome on Mac': 'platform',
  'Windows Hello': 'platform',
  '1Password': 'password-manager',
  Bitwarden: 'password-manager',
  Dashlane: 'password-manager',
  'Chromium virtual authenticator': 'virtual',
};

export function authenticatorKind(aaguid: string): AuthenticatorKind {
  return KIND[authenticatorName(aaguid)] ?? 'unknown';
}
