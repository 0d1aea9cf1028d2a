/**
 * `bun run bench -- checks [--messages N] [--reps R] [--sign ALGOS]`: what the inbound checks cost (issue 11). Two ringmta servers,
 * one with [checks] off and one with SPF, DKIM, ARC and DMARC on (dmarc "enforce"), get the same load through their
 * MX listener — 1 KiB × 20 sessions, in alternating repetitions in one run, end to end (a message counts when it is
 * a Maildir file). The sender's domain publishes what a real one does, served by dnsmasq on loopback: an SPF record
 * that passes 127.0.0.1 through an include, a DKIM key for each of the message's signatures (by default one
 * RSA-2048 signature, as the large mailbox providers sign; `--sign rsa,ed25519` two, as a sender rotating keys or
 * dual-signing signs; made by mailauth over From, Subject, Date and the body; the To and Message-ID the load tool
 * changes are not signed) and a DMARC p=reject record — so every message runs every check and passes them all.
 * Each server first takes 10,000 messages that are not counted (the runtime compiles the code on the message path,
 * the checked server has more of it, and its JIT threads were still taking ~80 µs of CPU per message through the
 * first 20,000 counted ones after a 2,000-message warm-up: `--threads on` shows it). Prints the medians, the ratio
 * checked / unchecked (the target: at least 70%), each server's CPU per message and its messages per spool
 * commit round.
 *
 * For performance work: `--checks` narrows the checked server to some checks (their share of the cost),
 * `--pipelining on` sends MAIL, RCPT and DATA in one write (RFC 2920), `--threads on` prints the CPU per message
 * of each server thread, and `--against DIR` adds a checked server run from another checkout (the same config,
 * in the same alternation), so that a change is measured against the code before it in one run.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { dkimSign } from "mailauth/lib/dkim/sign";
import { MessageTemplate } from "./message.ts";
import { alternateRuns, parseRepsArgs, type NamedPeer } from "./ab-runs.ts";
import { UsageError } from "./args.ts";
import { BENCH_DOMAIN } from "./peer.ts";
import { startRingmta } from "./peer-ringmta.ts";
import { startBenchDns } from "./dnsmasq.ts";
import { freePorts } from "./proc.ts";
import { median } from "./stats.ts";

const SENDER_DOMAIN = "sender.bench.test";
const FROM = `bench@${SENDER_DOMAIN}`;
const DATE = "Thu, 03 Dec 2026 00:00:00 +0000";
/** The body of every message: with the header fields (about 300 bytes) a 1 KiB message, plus its signatures. */
const BODY = 724;

function spki(key: KeyObject, algo: "rsa" | "ed25519"): string {
  const der = key.export({ format: "der", type: "spki" });
  // RFC 8463 §4.2: an ed25519 p= is the bare 32-byte key, not the SPKI structure.
  return (algo === "ed25519" ? der.subarray(der.length - 32) : der).toString("base64");
}



/** The newest delivered file's Authentication-Results field (the proof that the checks ran and passed). */
function lastResults(maildir: string): string {
  for (const sub of ["new", "cur"]) {
    let names: string[] = [];
    try {
      names = readdirSync(join(maildir, sub));
    } catch {
      continue;
    }
    if (names.length === 0) continue;
    const text = readFileSync(join(maildir, sub, names[names.length - 1]!), "latin1");
    const m = /^Authentication-Results:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*/m.exec(text);
    return m ? m[0].replace(/\r\n[ \t]+/g, " ") : "(no Authentication-Results field)";
  }
  return "(no message)";
}

/** Messages each server takes before the measured repetitions (its JIT warm-up; ab-runs.ts). */
const WARMUP = 10_000;

export const CHECKS_USAGE =
  "usage: bun run bench -- checks [--messages N (default 5000)] [--reps R (default 3)] [--sign rsa (default) | rsa,ed25519 | ed25519 | none]\n" +
  "  [--checks spf,dkim,arc,dmarc (default: all; the checked server's checks)] [--pipelining on] [--threads on]\n" +
  "  [--against DIR (a second checked server from another checkout, e.g. a git worktree of main with node_modules)]";

export async function runChecksBench(argv: string[]): Promise<number> {
  const { messages, reps, options } = parseRepsArgs(argv, CHECKS_USAGE, ["sign", "threads", "checks", "pipelining", "against"]);
  const algos = (options.sign ?? "rsa").split(",").filter((a) => a !== "none");
  if (algos.some((a) => a !== "rsa" && a !== "ed25519")) throw new UsageError(CHECKS_USAGE);
  for (const flag of ["threads", "pipelining"] as const) {
    if (options[flag] !== undefined && options[flag] !== "on") throw new UsageError(CHECKS_USAGE);
  }
  const only = (options.checks ?? "spf,dkim,arc,dmarc").split(",");
  if (only.some((c) => !["spf", "dkim", "arc", "dmarc"].includes(c))) throw new UsageError(CHECKS_USAGE);

  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const ed = generateKeyPairSync("ed25519");
  const rsaP = spki(rsa.publicKey, "rsa");
  const template = new MessageTemplate({ size: 1024, from: FROM, to: `x@${BENCH_DOMAIN}`, tag: "sign", date: DATE, bodySize: BODY });
  const keys = { rsa: rsa.privateKey, ed25519: ed.privateKey };
  const selector = { rsa: "rsa", ed25519: "ed" } as const;
  const signed =
    algos.length === 0
      ? { signatures: "", errors: [] }
      : await dkimSign(Buffer.from(template.unstuffed()), {
          canonicalization: "relaxed/relaxed",
          // Not To: it names each run's mailbox. Not Message-ID: the load tool numbers it.
          headerList: ["from", "subject", "date", "mime-version", "content-type"],
          signTime: new Date(),
          signatureData: algos.map((a) => ({
            signingDomain: SENDER_DOMAIN,
            selector: selector[a as "rsa" | "ed25519"],
            privateKey: keys[a as "rsa" | "ed25519"].export({ format: "pem", type: "pkcs8" }) as string,
          })),
        } as never);
  if (algos.length > 0 && !signed.signatures) throw new Error(`mailauth made no signature: ${JSON.stringify(signed.errors)}`);
  // dnsmasq for the sender's domain: SPF (through an include), two DKIM keys, DMARC p=reject.
  const dns = await startBenchDns([SENDER_DOMAIN], [
    `${SENDER_DOMAIN},v=spf1 include:_spf.${SENDER_DOMAIN} -all`,
    `_spf.${SENDER_DOMAIN},v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 ~all`,
    `rsa._domainkey.${SENDER_DOMAIN},v=DKIM1; k=rsa; p=${rsaP.slice(0, 250)},${rsaP.slice(250)}`,
    `ed._domainkey.${SENDER_DOMAIN},v=DKIM1; k=ed25519; p=${spki(ed.publicKey, "ed25519")}`,
    `_dmarc.${SENDER_DOMAIN},v=DMARC1; p=reject; rua=mailto:dmarc@${SENDER_DOMAIN}`,
  ].map((r) => `--txt-record=${r}`).concat(
    // dnsmasq's own records have TTL 0 unless told; published records live minutes to hours (RFC 7208 §4.6.4,
    // RFC 6376 §3.6.2 leave it to the publisher). Five minutes, so the resolver's cache works as it does in life.
    "--local-ttl=300",
  ));
  const on = (name: string, value = "on"): string => (only.includes(name) ? value : "off");
  const checked = `
[dns]
servers = ["${dns.server}"]

[checks]
spf = "${on("spf")}"
dkim = "${on("dkim")}"
arc = "${on("arc")}"
dmarc = "${on("dmarc", "enforce")}"
`;
  const peers: NamedPeer[] = [];
  try {
    const [mOff, mOn] = await freePorts(2);
    peers.push({ name: "unchecked", peer: await startRingmta({ metricsPort: mOff }) });
    peers.push({ name: "checked", peer: await startRingmta({ extra: checked, metricsPort: mOn }) });
    if (options.against !== undefined) {
      const repo = resolve(options.against);
      if (!existsSync(join(repo, "src", "main.ts"))) throw new UsageError(`--against ${options.against}: no src/main.ts there\n${CHECKS_USAGE}`);
      peers.push({ name: `checked (${options.against})`, peer: await startRingmta({ extra: checked, repo }) });
    }
    let proof = "";
    const rates = await alternateRuns(peers, {
      messages,
      reps,
      warmup: WARMUP,
      threadCpu: options.threads !== undefined,
      load: { from: FROM, headers: signed.signatures, date: DATE, bodySize: BODY, pipelining: options.pipelining === "on" },
      after: (p, mailbox) => {
        if (p.name === "checked" && proof === "") proof = lastResults(mailbox);
      },
    });
    const dkimWanted = algos.length === 0 ? /dkim=none/.test(proof) : (proof.match(/dkim=pass/g) ?? []).length === algos.length;
    const missing =
      (only.includes("spf") && !/spf=pass/.test(proof)) ||
      (only.includes("dkim") && !dkimWanted) ||
      (only.includes("dmarc") && !/dmarc=pass/.test(proof));
    if (missing) {
      throw new Error(`the checked server did not pass every check: ${proof}`);
    }
    const u = median(rates.unchecked!);
    const c = median(rates.checked!);
    console.log(
      `1 KiB × 20 sessions through the MX listener, ${messages} messages, ${reps} reps each, end to end (Maildir); ` +
        `DKIM signatures per message: ${algos.length === 0 ? "none" : algos.join(" + ")}`,
    );
    console.log(`checks off: median ${u.toFixed(0)} msgs/s  (${rates.unchecked!.map((x) => x.toFixed(0)).join(", ")})`);
    console.log(`checks on:  median ${c.toFixed(0)} msgs/s  (${rates.checked!.map((x) => x.toFixed(0)).join(", ")})`);
    for (const p of peers.slice(2)) {
      const r = rates[p.name]!;
      console.log(`${p.name}: median ${median(r).toFixed(0)} msgs/s (${r.map((x) => x.toFixed(0)).join(", ")}), ${((100 * median(r)) / u).toFixed(1)}% of checks off`);
    }
    const cu = median(rates.cpu.unchecked!);
    const cc = median(rates.cpu.checked!);
    console.log(`server CPU per message (all threads, median): ${cu.toFixed(0)} µs checks off, ${cc.toFixed(0)} µs checks on (+${(cc - cu).toFixed(0)} µs)`);
    // Spool group-commit rounds (ringmta_spool_commit_seconds_count) per message taken, over all repetitions.
    const perRound = async (port: number): Promise<number> => (WARMUP + messages * reps) / (await commitRounds(port));
    console.log(
      `messages per spool commit round (all repetitions): ${(await perRound(mOff!)).toFixed(1)} checks off, ${(await perRound(mOn!)).toFixed(1)} checks on`,
    );
    console.log(`  a delivered message: ${proof}`);
    console.log(`ratio on/off: ${((100 * c) / u).toFixed(1)}% (target >= 70%)`);
    return c / u >= 0.7 ? 0 : 1;
  } finally {
    for (const { peer } of peers) await peer.stop();
    for (const { peer } of peers) peer.remove();
    dns.stop();
  }
}

/** The spool's group-commit rounds so far, from a server's metrics endpoint. */
async function commitRounds(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^ringmta_spool_commit_seconds_count(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (m === null) throw new Error("no ringmta_spool_commit_seconds_count in the metrics");
  return Number(m[1]);
}
