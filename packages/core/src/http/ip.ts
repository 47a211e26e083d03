/**
 * IP addresses as the HTTP layer needs them: parsed from what sockets and proxies write (ports,
 * brackets, zone ids, IPv4-mapped IPv6), compared against address ranges, and turned into the
 * limiter key of a client. Pure functions, no Node.js import: they run on edge runtimes too.
 */

import { RateSyncError } from "../errors.js";

/** A parsed address: 4 bytes for IPv4, 16 for IPv6. IPv4-mapped IPv6 is parsed as IPv4. */
export interface IpAddress {
  /** 4 or 6. */
  readonly version: 4 | 6;
  /** The address bytes, network order. */
  readonly bytes: Uint8Array;
}

/** A range of addresses: an address and the length of its prefix in bits. */
export interface IpRange {
  /** The network address (bits past the prefix are zero). */
  readonly address: IpAddress;
  /** Prefix length in bits: 0 to 32 (IPv4) or 0 to 128 (IPv6). */
  readonly prefix: number;
}

const DECIMAL_OCTET = /^(?:0|[1-9]\d{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4Bytes(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    // Leading zeros are refused: some stacks read "010" as octal (8), others as decimal (10).
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseIpv6Bytes(text: string): Uint8Array | undefined {
  if (text.length === 0) return undefined;
  let head = text;
  let tail: Uint8Array | undefined;
  // An embedded IPv4 tail (::ffff:192.0.2.1, 64:ff9b::192.0.2.1) fills the last two groups.
  const lastColon = text.lastIndexOf(":");
  if (lastColon >= 0 && text.includes(".", lastColon)) {
    tail = parseIpv4Bytes(text.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    head = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): string[] | undefined => {
    if (part === "") return [];
    const groups = part.split(":");
    return groups.every((group) => HEX_GROUP.test(group)) ? groups : undefined;
  };
  const left = groupsOf(halves[0] as string);
  const right = halves.length === 2 ? groupsOf(halves[1] as string) : [];
  if (left === undefined || right === undefined) return undefined;
  const count = left.length + right.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const groups = [...left, ...new Array<string>(8 - count).fill("0"), ...right];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const value = Number.parseInt(groups[i] as string, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  }
  if (tail !== undefined) bytes.set(tail, 12);
  return bytes;
}

function isMappedIpv4(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * Parses an address as sockets, proxies and `Forwarded` headers write it: `192.0.2.1`,
 * `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]:8080`, `fe80::1%eth0`, `::ffff:192.0.2.1`.
 * Ports and zone ids are dropped; an IPv4-mapped IPv6 address is returned as the IPv4 address.
 * Returns `undefined` for anything else (host names, `unknown`, obfuscated `_identifiers`).
 */
export function parseIp(input: string): IpAddress | undefined {
  let text = input.trim();
  if (text.length === 0 || text.length > 100) return undefined;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return undefined;
    const rest = text.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    text = text.slice(1, end);
  } else if (text.includes(".") && text.indexOf(":") === text.lastIndexOf(":") && text.includes(":")) {
    // IPv4 with a port: exactly one colon. (IPv6 has at least two.)
    const [host, port] = text.split(":") as [string, string];
    if (!/^\d{1,5}$/.test(port)) return undefined;
    text = host;
  }
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (!text.includes(":")) {
    const bytes = parseIpv4Bytes(text);
    return bytes === undefined ? undefined : { version: 4, bytes };
  }
  const bytes = parseIpv6Bytes(text);
  if (bytes === undefined) return undefined;
  if (isMappedIpv4(bytes)) return { version: 4, bytes: bytes.slice(12) };
  return { version: 6, bytes };
}

/** Zeroes every bit of `bytes` past the first `prefix` bits (a copy). */
function mask(bytes: Uint8Array, prefix: number): Uint8Array {
  const masked = bytes.slice();
  for (let i = 0; i < masked.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    masked[i] = (masked[i] as number) & ((0xff << (8 - bits)) & 0xff);
  }
  return masked;
}

/** RFC 5952 text of an IPv6 address: lower case, no leading zeros, the longest zero run (2+) as `::`. */
function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((bytes[i * 2] as number) << 8) | (bytes[i * 2 + 1] as number));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** The canonical text of an address: dotted quad for IPv4, RFC 5952 for IPv6. */
export function formatIp(address: IpAddress): string {
  return address.version === 4 ? address.bytes.join(".") : formatIpv6(address.bytes);
}

/**
 * The limiter key of a client address: the IPv4 address itself, or for IPv6 the network of
 * `ipv6Prefix` bits it belongs to (`2001:db8:ab00::/56`): one subscriber usually gets a whole
 * /56 or /64, so keying single IPv6 addresses would let one client rotate through billions.
 */
export function clientKeyOf(address: IpAddress, ipv6Prefix: number): string {
  if (address.version === 4) return address.bytes.join(".");
  return `${formatIpv6(mask(address.bytes, ipv6Prefix))}/${ipv6Prefix}`;
}

/** Named ranges accepted where address ranges are, as in Express's `trust proxy`. */
const NAMED_RANGES: Readonly<Record<string, readonly string[]>> = {
  loopback: ["127.0.0.0/8", "::1/128"],
  linklocal: ["169.254.0.0/16", "fe80::/10"],
  uniquelocal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
};

/** The names {@link parseIpRanges} accepts besides CIDR ranges and single addresses. */
export const NAMED_IP_RANGES: readonly string[] = Object.keys(NAMED_RANGES);

/**
 * Parses address ranges: CIDR (`10.0.0.0/8`, `2001:db8::/32`), single addresses (a /32 or /128),
 * and the names `loopback`, `linklocal`, `uniquelocal`. Throws an `INVALID_ARGUMENT`
 * {@link RateSyncError} naming the first entry that is none of these.
 */
export function parseIpRanges(entries: readonly string[], option = "trustedProxies"): IpRange[] {
  const ranges: IpRange[] = [];
  for (const entry of entries) {
    if (typeof entry !== "string") {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        `${option} must list address ranges as strings, got ${typeof entry} ${String(entry)}.`,
      );
    }
    const named = NAMED_RANGES[entry.trim().toLowerCase()];
    if (named !== undefined) {
      ranges.push(...parseIpRanges(named, option));
      continue;
    }
    const slash = entry.indexOf("/");
    const address = parseIp(slash < 0 ? entry : entry.slice(0, slash));
    const mapped = slash >= 0 && address?.version === 4 && entry.slice(0, slash).includes(":");
    const bits = address === undefined ? 0 : address.version === 4 ? 32 : 128;
    let prefix = bits;
    if (slash >= 0) {
      const text = entry.slice(slash + 1).trim();
      prefix = /^\d{1,3}$/.test(text) ? Number(text) : Number.NaN;
      // "::ffff:10.0.0.0/104" is the IPv4 range 10.0.0.0/8.
      if (mapped) prefix -= 96;
    }
    if (address === undefined || !(prefix >= 0 && prefix <= bits)) {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        `${option} has ${JSON.stringify(entry)}, which is not an address range. Use CIDR ranges ("10.0.0.0/8", "2001:db8::/32"), single addresses, or one of ${NAMED_IP_RANGES.map((name) => `"${name}"`).join(", ")}.`,
      );
    }
    ranges.push({ address: { version: address.version, bytes: mask(address.bytes, prefix) }, prefix });
  }
  return ranges;
}

/** Whether `address` falls inside `range`. */
export function inIpRange(address: IpAddress, range: IpRange): boolean {
  if (address.version !== range.address.version) return false;
  const full = Math.floor(range.prefix / 8);
  for (let i = 0; i < full; i++) if (address.bytes[i] !== range.address.bytes[i]) return false;
  const bits = range.prefix % 8;
  if (bits === 0) return true;
  const byteMask = (0xff << (8 - bits)) & 0xff;
  return ((address.bytes[full] as number) & byteMask) === range.address.bytes[full];
}
