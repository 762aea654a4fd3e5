/**
 * A throwaway self-signed certificate, made by the openssl command, for tests of what a client
 * does with a certificate it does not trust, or one issued to another host.
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireBinary, run } from "./process.js";

export interface SelfSignedCertificate {
  /** The private key, PEM. */
  key: string;
  /** The certificate, PEM: also the CA that vouches for it. */
  cert: string;
}

/** A self-signed certificate for `commonName` (no subjectAltName), valid for two days. */
export function selfSignedCertificate(commonName: string): SelfSignedCertificate {
  const openssl = requireBinary("openssl", "Install it: apt-get install -y openssl");
  const dir = mkdtempSync(join(tmpdir(), "interlock-tls-"));
  try {
    const [key, cert] = [join(dir, "key.pem"), join(dir, "cert.pem")];
    run(openssl, [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${commonName}`],
      ...["-keyout", key, "-out", cert],
    ]);
    return { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
