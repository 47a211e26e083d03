/**
 * Who the client is, as an IP address: the socket's peer by default; behind proxies the user
 * trusts, the forwarded-for chain read from the right, each trusted hop skipped, so that what a
 * client writes into the header itself (the left-most entries) never decides its identity.
 */

import { describeValue, RateSyncError } from "../errors.js";
import { clientKeyOf, type IpAddress, type IpRange, inIpRange, parseIp, parseIpRanges } from "./ip.js";

/** Which header the trusted proxies write the forwarded-for chain into. */
export type ForwardedHeader = "x-forwarded-for" | "forwarded";

/** Options of {@link createClientAddressResolver}: how to find the client's address. */
export interface ClientAddressOptions {
  /**
   * The proxies in front of the application, whose forwarded-for entries are believed:
   * - a number `n`: exactly `n` proxies (load balancer, CDN...) stand in front; the client is the
   *   address `n` hops to the left of the socket peer;
   * - address ranges (`["10.0.0.0/8", "loopback"]`): every hop inside them is a proxy; the client
   *   is the right-most address outside them.
   *
   * Without it (the default) no header is believed and the client is the socket peer.
   * @default 0
   */
  trustedProxies?: number | readonly string[] | undefined;
  /**
   * The header the trusted proxies write: `X-Forwarded-For` or the standard `Forwarded`
   * (RFC 7239). Only one is read: a proxy that writes one lets clients forge the other.
   * @default "x-forwarded-for"
   */
  forwardedHeader?: ForwardedHeader | undefined;
  /**
   * IPv6 clients are keyed by network, not by address: the prefix length in bits (1 to 128).
   * One subscriber usually holds a /56 or a /64, so single addresses are no identity.
   * @default 56
   */
  ipv6Prefix?: number | undefined;
  /**
   * Where the one-time warning goes when forwarded headers arrive but no proxy is trusted;
   * `false` silences it.
   * @default console.warn
   */
  warn?: ((message: string) => void) | false | undefined;
}

/** What a resolver needs from a request: the socket peer's address and a header reader. */
export interface AddressSource {
  /** The socket peer's address as the runtime reports it; `undefined` when it has none. */
  readonly remoteAddress: string | undefined;
  /** A request header by lower-case name, several values joined with `", "`. */
  header(name: string): string | undefined;
}

/** The client's address and its limiter key. */
export interface ClientAddress {
  /** The parsed address (IPv4-mapped IPv6 as IPv4). */
  readonly address: IpAddress;
  /** The limiter key: the IPv4 address, or the IPv6 network of `ipv6Prefix` bits (`2001:db8::/56`). */
  readonly key: string;
}

/** Finds the client address of a request; `undefined` when there is none to be trusted. */
export type ClientAddressResolver = (source: AddressSource) => ClientAddress | undefined;

/** Requests checked for forwarded headers one by one before sampling, and the sampling period. */
const WARN_SAMPLE = 64;

/** Whether the request carries a forwarded-for header. */
function forwarded(source: AddressSource): boolean {
  return (source.header("x-forwarded-for") ?? source.header("forwarded")) !== undefined;
}

/** Distinct socket addresses whose parsed form is kept. */
const PEER_CACHE_SIZE = 1024;

/** Default IPv6 grouping. */
export const DEFAULT_IPV6_PREFIX = 56;

/**
 * Splits a header value on `separator` outside double-quoted strings (RFC 7239 allows quotes
 * around values, and quoted values may contain commas and semicolons).
 */
function splitOutsideQuotes(value: string, separator: string): string[] {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i] as string;
    if (quoted && char === "\\" && i + 1 < value.length) {
      current += char + (value[i + 1] as string);
      i++;
      continue;
    }
    if (char === '"') quoted = !quoted;
    if (char === separator && !quoted) {
      parts.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

function unquote(value: string): string {
  const text = value.trim();
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    return text.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  return text;
}

/**
 * The `for=` value of each element of an RFC 7239 `Forwarded` header, left to right; an element
 * without one gives `""` (an address nobody can be keyed by).
 */
export function parseForwardedFor(value: string): string[] {
  return splitOutsideQuotes(value, ",").map((element) => {
    for (const pair of splitOutsideQuotes(element, ";")) {
      const equals = pair.indexOf("=");
      if (equals < 0) continue;
      if (pair.slice(0, equals).trim().toLowerCase() === "for") return unquote(pair.slice(equals + 1));
    }
    return "";
  });
}

/** The entries of an `X-Forwarded-For` header, left to right. */
export function parseXForwardedFor(value: string): string[] {
  return value.split(",").map((entry) => entry.trim());
}

function checkOptions(options: ClientAddressOptions): {
  hops: number;
  ranges: IpRange[] | undefined;
  header: ForwardedHeader;
  ipv6Prefix: number;
} {
  const trusted = options.trustedProxies ?? 0;
  let hops = 0;
  let ranges: IpRange[] | undefined;
  if (typeof trusted === "number") {
    if (!Number.isSafeInteger(trusted) || trusted < 0) {
      throw new RateSyncError(
        "INVALID_ARGUMENT",
        `trustedProxies must be a whole number of proxy hops >= 0 or a list of address ranges, got ${describeValue(trusted)}.`,
      );
    }
    hops = trusted;
  } else if (Array.isArray(trusted)) {
    ranges = parseIpRanges(trusted);
  } else {
    throw new RateSyncError(
      "INVALID_ARGUMENT",
      `trustedProxies must be a whole number of proxy hops >= 0 or a list of address ranges, got ${describeValue(trusted)}.`,
    );
  }
  const header = options.forwardedHeader ?? "x-forwarded-for";
  if (header !== "x-forwarded-for" && header !== "forwarded") {
    throw new RateSyncError(
      "INVALID_ARGUMENT",
      `forwardedHeader must be "x-forwarded-for" or "forwarded", got ${describeValue(header)}.`,
    );
  }
  const ipv6Prefix = options.ipv6Prefix ?? DEFAULT_IPV6_PREFIX;
  if (!Number.isSafeInteger(ipv6Prefix) || ipv6Prefix < 1 || ipv6Prefix > 128) {
    throw new RateSyncError(
      "INVALID_ARGUMENT",
      `ipv6Prefix must be a whole number of bits from 1 to 128 (56 groups a typical subscriber, 64 one network, 128 one address), got ${describeValue(ipv6Prefix)}.`,
    );
  }
  return { hops, ranges, header, ipv6Prefix };
}

/**
 * Builds the function that finds a request's client address. Options are checked here, once:
 * a bad value throws an `INVALID_ARGUMENT` {@link RateSyncError} naming it.
 *
 * @example
 * ```ts
 * // Behind one load balancer that appends to X-Forwarded-For:
 * const resolve = createClientAddressResolver({ trustedProxies: 1 });
 * const client = resolve({
 *   remoteAddress: "10.0.0.2",
 *   header: (name) => (name === "x-forwarded-for" ? "203.0.113.9, 198.51.100.7" : undefined),
 * });
 * console.log(client?.key); // "198.51.100.7": what the load balancer saw
 * ```
 */
export function createClientAddressResolver(options: ClientAddressOptions = {}): ClientAddressResolver {
  const { hops, ranges, header, ipv6Prefix } = checkOptions(options);
  const trustsNothing = hops === 0 && (ranges === undefined || ranges.length === 0);
  const warn =
    options.warn === false ? undefined : (options.warn ?? ((message: string) => globalThis.console?.warn(message)));
  let warned = false;
  let seen = 0;
  const toClient = (address: IpAddress | undefined): ClientAddress | undefined =>
    address === undefined ? undefined : { address, key: clientKeyOf(address, ipv6Prefix) };
  // Parsed peers, by the text the socket gave: most requests come from an address seen before
  // (keep-alive connections, a load balancer). Bounded: emptied when full.
  const peers = new Map<string, ClientAddress | undefined>();
  const parsePeer = (peer: string): ClientAddress | undefined => {
    let client = peers.get(peer);
    if (client === undefined && !peers.has(peer)) {
      if (peers.size >= PEER_CACHE_SIZE) peers.clear();
      client = toClient(parseIp(peer));
      peers.set(peer, client);
    }
    return client;
  };

  return (source) => {
    const peer = source.remoteAddress;
    if (trustsNothing) {
      // Looked for on the first requests and then on one in WARN_SAMPLE: behind a proxy every
      // request carries the header, and on some runtimes (@hono/node-server) reading any header
      // builds the whole header list, which would cost every request more than its decision.
      if (!warned && warn !== undefined && (seen++ < WARN_SAMPLE || seen % WARN_SAMPLE === 0) && forwarded(source)) {
        warned = true;
        warn(
          "ratesync: requests carry X-Forwarded-For or Forwarded headers, but no proxy is trusted, so every client behind a proxy shares the proxy's budget. If a proxy or load balancer stands in front of this application, set trustedProxies (the number of proxies, or their address ranges); see docs/adapters.md.",
        );
      }
      return peer === undefined ? undefined : parsePeer(peer);
    }
    // Without a socket peer there is no chain to walk: counting hops from the header alone would
    // let the client choose which of its own entries is "n hops away".
    if (peer === undefined) return undefined;
    const value = source.header(header);
    // The chain as the last proxy sees it: what it was told, then who told it (the socket peer).
    const chain =
      value === undefined ? [] : header === "forwarded" ? parseForwardedFor(value) : parseXForwardedFor(value);
    chain.push(peer);
    if (ranges === undefined) {
      // n trusted hops: the entry n places left of the socket peer, or the left-most when the
      // chain is shorter (the request did not pass every proxy).
      return toClient(parseIp(chain[Math.max(0, chain.length - 1 - hops)] as string));
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const address = parseIp(chain[i] as string);
      // A hop a trusted proxy could not name ("unknown", an obfuscated id, garbage): nobody to key.
      if (address === undefined) return undefined;
      if (i === 0 || !ranges.some((range) => inIpRange(address, range))) return toClient(address);
    }
    return undefined;
  };
}
