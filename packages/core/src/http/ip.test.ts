import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isRateSyncError } from "../errors.js";
import { clientKeyOf, formatIp, inIpRange, parseIp, parseIpRanges } from "./ip.js";

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const groups = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 });

/** Every textual form of one IPv6 address: full, upper case, leading zeros, each `::` compression. */
function ipv6Forms(words: number[]): string[] {
  const hex = words.map((word) => word.toString(16));
  const forms = [
    hex.join(":"),
    hex.join(":").toUpperCase(),
    words.map((w) => w.toString(16).padStart(4, "0")).join(":"),
  ];
  for (let start = 0; start < 8; start++) {
    for (let end = start + 1; end <= 8; end++) {
      if (words.slice(start, end).every((word) => word === 0)) {
        forms.push(`${hex.slice(0, start).join(":")}::${hex.slice(end).join(":")}`);
      }
    }
  }
  return forms;
}

describe("parseIp", () => {
  it("parses IPv4, with or without a port, to the same address", () => {
    fc.assert(
      fc.property(ipv4, fc.integer({ min: 0, max: 65535 }), (octets, port) => {
        const text = octets.join(".");
        expect(formatIp(parseIp(text) ?? fail(text))).toBe(text);
        expect(formatIp(parseIp(`${text}:${port}`) ?? fail(text))).toBe(text);
        expect(formatIp(parseIp(` ${text} `) ?? fail(text))).toBe(text);
      }),
    );
  });

  it("gives IPv4-mapped IPv6 (dotted or hex, bracketed, with a port) the IPv4 key", () => {
    fc.assert(
      fc.property(ipv4, fc.integer({ min: 1, max: 65535 }), (octets, port) => {
        const text = octets.join(".");
        const hex = `${((octets[0] << 8) | octets[1]).toString(16)}:${((octets[2] << 8) | octets[3]).toString(16)}`;
        for (const form of [
          `::ffff:${text}`,
          `::FFFF:${text}`,
          `[::ffff:${text}]:${port}`,
          `::ffff:${hex}`,
          `0:0:0:0:0:ffff:${hex}`,
        ]) {
          const parsed = parseIp(form);
          expect(parsed?.version, form).toBe(4);
          expect(clientKeyOf(parsed ?? fail(form), 56)).toBe(text);
        }
      }),
    );
  });

  it("parses every textual form of an IPv6 address (case, zeros, ::, brackets, port, zone) to one address", () => {
    fc.assert(
      fc.property(
        groups.map((words) => (words[0] === 0 && words[5] === 0xffff ? [1, ...words.slice(1)] : words)),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 1, max: 7 }),
        (raw, zeroFrom, zeroCount) => {
          // Zero a run so that the `::` forms are exercised too.
          const words = raw.map((word, i) => (i >= zeroFrom && i < zeroFrom + zeroCount ? 0 : word));
          if (words.slice(0, 5).every((word) => word === 0) && words[5] === 0xffff) return;
          const canonical = formatIp(parseIp(words.map((w) => w.toString(16)).join(":")) ?? fail(String(words)));
          for (const form of ipv6Forms(words)) {
            for (const variant of [form, `[${form}]`, `[${form}]:8080`, `${form}%eth0`]) {
              expect(formatIp(parseIp(variant) ?? fail(variant)), variant).toBe(canonical);
            }
          }
          // Canonical text parses back to itself (RFC 5952 is a fixed point).
          expect(formatIp(parseIp(canonical) ?? fail(canonical))).toBe(canonical);
        },
      ),
    );
  });

  it("writes IPv6 per RFC 5952: lower case, longest zero run compressed, single zero groups kept", () => {
    expect(formatIp(parseIp("2001:0DB8:0000:0000:0000:0000:0000:0001") ?? fail(""))).toBe("2001:db8::1");
    expect(formatIp(parseIp("2001:db8:0:1:1:1:1:1") ?? fail(""))).toBe("2001:db8:0:1:1:1:1:1");
    expect(formatIp(parseIp("2001:0:0:1:0:0:0:1") ?? fail(""))).toBe("2001:0:0:1::1");
    expect(formatIp(parseIp("::") ?? fail(""))).toBe("::");
  });

  it("refuses what is not an address", () => {
    for (const text of [
      "",
      "unknown",
      "_hidden",
      "example.com",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.4:port",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "12345::",
      "[::1",
      "[::1]x",
      "::ffff:1.2.3.256",
    ]) {
      expect(parseIp(text), text).toBeUndefined();
    }
  });

  it("never throws on arbitrary input", () => {
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (text) => void parseIp(text)));
  });
});

describe("clientKeyOf", () => {
  it("groups IPv6 by prefix: every address of one /56 shares a key, neighbours do not", () => {
    fc.assert(
      fc.property(groups, groups, (a, b) => {
        const first = parseIp(a.map((w) => w.toString(16)).join(":"));
        // Same first 56 bits as `a`, anything after.
        const mixed = [
          a[0],
          a[1],
          a[2],
          (a[3] as number & 0xff00) | ((b[3] as number) & 0xff),
          ...b.slice(4),
        ] as number[];
        const second = parseIp(mixed.map((w) => w.toString(16)).join(":"));
        if (first?.version !== 6 || second?.version !== 6) return;
        expect(clientKeyOf(first, 56)).toBe(clientKeyOf(second, 56));
        expect(clientKeyOf(first, 56).endsWith("/56")).toBe(true);
      }),
    );
    const a = parseIp("2001:db8:ab:cd00::1") ?? fail("");
    const b = parseIp("2001:db8:ab:ce00::1") ?? fail("");
    expect(clientKeyOf(a, 56)).toBe("2001:db8:ab:cd00::/56");
    expect(clientKeyOf(a, 56)).not.toBe(clientKeyOf(b, 56));
    expect(clientKeyOf(a, 64)).toBe("2001:db8:ab:cd00::/64");
    expect(clientKeyOf(a, 128)).toBe("2001:db8:ab:cd00::1/128");
  });
});

describe("parseIpRanges / inIpRange", () => {
  it("matches CIDR ranges, single addresses and named ranges", () => {
    const ranges = parseIpRanges(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "loopback", "::ffff:172.16.0.0/108"]);
    const inside = (text: string) => ranges.some((range) => inIpRange(parseIp(text) ?? fail(text), range));
    expect(inside("10.255.1.2")).toBe(true);
    expect(inside("11.0.0.1")).toBe(false);
    expect(inside("192.0.2.7")).toBe(true);
    expect(inside("192.0.2.8")).toBe(false);
    expect(inside("2001:db8:ffff::1")).toBe(true);
    expect(inside("2001:db9::1")).toBe(false);
    expect(inside("127.0.0.1")).toBe(true);
    expect(inside("::1")).toBe(true);
    expect(inside("::ffff:10.1.1.1")).toBe(true);
    expect(inside("172.31.0.1")).toBe(true);
    expect(inside("172.32.0.1")).toBe(false);
  });

  it("agrees with a bit-by-bit comparison for random IPv4 ranges", () => {
    fc.assert(
      fc.property(ipv4, ipv4, fc.integer({ min: 0, max: 32 }), (net, addr, prefix) => {
        const range = parseIpRanges([`${net.join(".")}/${prefix}`])[0] ?? fail("");
        const toInt = (o: number[]) =>
          (o[0] as number) * 2 ** 24 + (o[1] as number) * 2 ** 16 + (o[2] as number) * 256 + (o[3] as number);
        const bits = (n: number) => (prefix === 0 ? 0 : Math.floor(n / 2 ** (32 - prefix)));
        expect(inIpRange(parseIp(addr.join(".")) ?? fail(""), range)).toBe(bits(toInt(net)) === bits(toInt(addr)));
      }),
    );
  });

  it("throws INVALID_ARGUMENT naming a bad range", () => {
    for (const entry of ["10.0.0.0/33", "2001:db8::/129", "nope", "10.0.0.0/x"]) {
      let error: unknown;
      try {
        parseIpRanges([entry]);
      } catch (caught) {
        error = caught;
      }
      expect(isRateSyncError(error, "INVALID_ARGUMENT"), entry).toBe(true);
      expect((error as Error).message).toContain(JSON.stringify(entry));
    }
  });
});

function fail(text: string): never {
  throw new Error(`expected an address: ${text}`);
}
