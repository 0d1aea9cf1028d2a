/** Envelopes for unit tests of the spool and the couriers: every recipient local (Maildir), one per address. */
import type { Envelope } from "../../src/mail/index.ts";

export function localEnvelope(rcpts: string[], over: Partial<Envelope> = {}): Envelope {
  return {
    sender: "alice@example.test",
    recipients: rcpts.map((a) => {
      const [localPart, domain] = a.split("@") as [string, string];
      return { rcpt: a, address: a, route: { kind: "local", domain, localPart } };
    }),
    body: "8BITMIME",
    smtputf8: false,
    client: { address: "127.0.0.1", helo: "client.test", listener: "mx" },
    arrival: 0,
    ...over,
  };
}
