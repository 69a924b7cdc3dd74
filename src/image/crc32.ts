/**
 * CRC-32 (the gzip polynomial) of two pieces joined, from the CRC of each and the second one's
 * length: zlib's crc32_combine (multmodp / x2nmodp, zlib 1.2.12+), in GF(2) polynomial
 * arithmetic modulo the reflected polynomial. Neither Node 20 nor 22 exposes it (`zlib.crc32`,
 * from Node 20.15, computes a CRC but cannot join two), and parallel gzip needs it to join the
 * CRCs of blocks computed on different threads.
 */
export function crc32Combine(crc1: number, crc2: number, length2: number): number {
  return (multiplyModP(powerOfX(length2, 3), crc1 >>> 0) ^ (crc2 >>> 0)) >>> 0;
}

const POLYNOMIAL = 0xedb88320;
const TOP = 0x80000000;

// a * b modulo p, with bit 31 the x^0 term (the reflected form zlib uses).
function multiplyModP(a: number, b: number): number {
  let product = 0;
  let factor = b >>> 0;
  for (let m = TOP; m > 0; m = Math.floor(m / 2)) {
    if ((a & m) !== 0) {
      product ^= factor;
      if ((a & (m - 1)) === 0) break;
    }
    factor = factor & 1 ? (factor >>> 1) ^ POLYNOMIAL : factor >>> 1;
  }
  return product >>> 0;
}

// x^(2^k) modulo p for k = 0..31.
const X_TO_2_TO_K: number[] = (() => {
  const table: number[] = [];
  let p = 0x40000000; // x^1
  for (let k = 0; k < 32; k++) {
    table.push(p);
    p = multiplyModP(p, p);
  }
  return table;
})();

// x^(n * 2^k) modulo p: for a length of n bytes, k = 3 (8 bits a byte).
function powerOfX(n: number, k: number): number {
  let p = TOP; // x^0
  let rest = n;
  let bit = k;
  while (rest > 0) {
    if (rest % 2 === 1) p = multiplyModP(X_TO_2_TO_K[bit & 31] as number, p);
    rest = Math.floor(rest / 2);
    bit++;
  }
  return p;
}
