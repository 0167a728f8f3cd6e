// Verify the DKIM signatures of a message with mailauth (Andris Reinman's Node.js library,
// an implementation other than dkimpy that, unlike Debian bookworm's Mail::DKIM, knows
// ed25519-sha256, RFC 8463), resolving keys through a test DNS server on 127.0.0.1.
//
// usage: node dkimverify.mjs DNS_PORT < message
// prints one line per signature: RESULT<TAB>DOMAIN<TAB>SELECTOR<TAB>ALGORITHM<TAB>DETAIL
// (the format of dkimverify.pl, without its "ed25519-support" first line). RESULT is
// mailauth's: pass, fail (bad signature), neutral (e.g. body hash did not verify, no key),
// temperror, policy; an unsigned message gives one "none" line with empty fields.
// Install the dependency first: npm ci --prefix tests/support/js
import { promises as dns } from 'node:dns';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write('usage: node dkimverify.mjs DNS_PORT < message\n');
    process.exit(2);
}

const resolver = new dns.Resolver({ timeout: 2000, tries: 2 });
resolver.setServers([`127.0.0.1:${port}`]);

// mailauth calls resolver(name, rrtype) like dns.promises.resolve; for TXT it expects
// dns.resolveTxt's shape: one array of character-strings per record.
async function resolve(name, rrtype) {
    if (rrtype !== 'TXT') {
        const err = new Error(`dkimverify.mjs resolves only TXT, not ${rrtype}`);
        err.code = 'ENOTIMP';
        throw err;
    }
    const records = await resolver.resolveTxt(name);
    return records.map(strings => [strings.join('')]);
}

const chunks = [];
for await (const chunk of process.stdin) {
    chunks.push(chunk);
}
const message = Buffer.concat(chunks);

const { results } = await dkimVerify(message, { resolver: resolve });
const clean = value => String(value ?? '').replace(/\s+/g, ' ').trim();
for (const r of results) {
    const status = r.status || {};
    const detail = [status.comment, status.underSized ? `undersized ${status.underSized}` : '']
        .filter(Boolean).join('; ');
    process.stdout.write(
        [status.result, r.signingDomain, r.selector, r.algo, detail].map(clean).join('\t') + '\n'
    );
}
