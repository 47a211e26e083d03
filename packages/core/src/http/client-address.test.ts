import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { isRateSyncError } from "../errors.js";
import { type AddressSource, createClientAddressResolver, parseForwardedFor } from "./client-address.js";

function source(remoteAddress: string | undefined, headers: Record<string, string> = {}): AddressSource {
  return { remoteAddress, header: (name) => headers[name] };
}

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));

describe("createClientAddressResolver", () => {
  it("uses the socket peer and ignores forwarded headers when no proxy is trusted, warning once", () => {
    const warn = vi.fn();
    const resolve = createClientAddressResolver({ warn });
    expect(resolve(source("198.51.100.7", { "x-forwarded-for": "1.1.1.1" }))?.key).toBe("198.51.100.7");
    expect(resolve(source("198.51.100.8", { forwarded: "for=1.1.1.1" }))?.key).toBe("198.51.100.8");
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.[0]).toContain("trustedProxies");
    expect(resolve(source("::ffff:198.51.100.7"))?.key).toBe("198.51.100.7");
    expect(resolve(source(undefined))).toBeUndefined();
    expect(resolve(source("not-an-ip"))).toBeUndefined();
  });

  it("still warns once forwarded headers start arriving after many requests without", () => {
    const warn = vi.fn();
    const resolve = createClientAddressResolver({ warn });
    for (let i = 0; i < 1000; i++) resolve(source("198.51.100.7"));
    for (let i = 0; i < 200; i++) resolve(source("198.51.100.7", { "x-forwarded-for": "1.1.1.1" }));
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it("does not warn without forwarded headers, nor when silenced", () => {
    const warn = vi.fn();
    createClientAddressResolver({ warn })(source("192.0.2.1"));
    createClientAddressResolver({ warn: false })(source("192.0.2.1", { "x-forwarded-for": "1.1.1.1" }));
    expect(warn).not.toHaveBeenCalled();
  });

  it("with n trusted hops takes the entry n places left of the peer, whatever the client prepends", () => {
    const one = createClientAddressResolver({ trustedProxies: 1 });
    const two = createClientAddressResolver({ trustedProxies: 2 });
    fc.assert(
      fc.property(
        fc.array(fc.oneof(ipv4, fc.constant("garbage")), { maxLength: 5 }),
        ipv4,
        ipv4,
        (spoofed, client, lb) => {
          const xff = [...spoofed, client].join(", ");
          expect(one(source("10.0.0.2", { "x-forwarded-for": xff }))?.key).toBe(client);
          expect(two(source("10.0.0.3", { "x-forwarded-for": `${xff}, ${lb}` }))?.key).toBe(client);
        },
      ),
    );
    // A request that reached the app without passing the proxy: the chain is short, the left-most counts.
    expect(two(source("192.0.2.1"))?.key).toBe("192.0.2.1");
  });

  it("with trusted ranges walks from the right, skipping trusted hops", () => {
    const resolve = createClientAddressResolver({ trustedProxies: ["10.0.0.0/8", "2001:db8:1::/48"] });
    fc.assert(
      fc.property(fc.array(ipv4, { maxLength: 4 }), ipv4, (spoofed, client) => {
        if (client.startsWith("10.")) return;
        const xff = [...spoofed, client, "10.1.1.1", "[2001:db8:1::5]:443"].join(",");
        expect(resolve(source("10.0.0.2", { "x-forwarded-for": xff }))?.key).toBe(client);
      }),
    );
    // The peer itself is not trusted: the header is the client's own claim.
    expect(resolve(source("203.0.113.5", { "x-forwarded-for": "1.2.3.4" }))?.key).toBe("203.0.113.5");
    // Every hop trusted: the left-most is the client (an internal caller).
    expect(resolve(source("10.0.0.2", { "x-forwarded-for": "10.9.9.9" }))?.key).toBe("10.9.9.9");
    // A hop the proxy could not name: no identity rather than the proxy's.
    expect(resolve(source("10.0.0.2", { "x-forwarded-for": "unknown" }))).toBeUndefined();
    expect(resolve(source(undefined, { "x-forwarded-for": "1.2.3.4" }))).toBeUndefined();
  });

  it("reads the standard Forwarded header when told to", () => {
    const resolve = createClientAddressResolver({ trustedProxies: 1, forwardedHeader: "forwarded" });
    expect(
      resolve(
        source("10.0.0.2", {
          forwarded: 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"',
          "x-forwarded-for": "9.9.9.9",
        }),
      )?.key,
    ).toBe("2001:db8:cafe::/56");
    expect(resolve(source("10.0.0.2", { forwarded: "for=_hidden" }))).toBeUndefined();
  });

  it("groups IPv6 clients by the configured prefix", () => {
    expect(createClientAddressResolver()(source("2001:db8:aa:bbcc::1"))?.key).toBe("2001:db8:aa:bb00::/56");
    expect(createClientAddressResolver({ ipv6Prefix: 64 })(source("fe80::1%eth0"))?.key).toBe("fe80::/64");
  });

  it("throws INVALID_ARGUMENT naming a bad option", () => {
    const bad = [
      { trustedProxies: -1 },
      { trustedProxies: 1.5 },
      { trustedProxies: "10.0.0.0/8" as unknown as string[] },
      { trustedProxies: ["10.0.0.0/99"] },
      { forwardedHeader: "x-real-ip" as "forwarded" },
      { ipv6Prefix: 0 },
      { ipv6Prefix: 129 },
    ];
    for (const options of bad) {
      let error: unknown;
      try {
        createClientAddressResolver(options);
      } catch (caught) {
        error = caught;
      }
      expect(isRateSyncError(error, "INVALID_ARGUMENT"), JSON.stringify(options)).toBe(true);
    }
  });
});

describe("parseForwardedFor", () => {
  it("reads for= of each element, quoted or not, case-insensitive, ignoring separators inside quotes", () => {
    expect(parseForwardedFor('for=1.2.3.4;proto=https, for="[::1]:80";by="a,b;c", proto=http, FOR=5.6.7.8')).toEqual([
      "1.2.3.4",
      "[::1]:80",
      "",
      "5.6.7.8",
    ]);
  });
});
