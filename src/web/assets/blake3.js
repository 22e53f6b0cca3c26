// BLAKE3 (the hash the server verifies uploads with), incremental, after
// the reference implementation: 1 KiB chunks of 64-byte blocks, a stack of
// chaining values merged as chunks complete.
"use strict";
(function (global) {
  const IV = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8;
  const state = new Uint32Array(16), message = new Uint32Array(16), scratch = new Uint32Array(16);

  function g(s, a, b, c, d, x, y) {
    s[a] = s[a] + s[b] + x; s[d] ^= s[a]; s[d] = (s[d] >>> 16) | (s[d] << 16);
    s[c] = s[c] + s[d]; s[b] ^= s[c]; s[b] = (s[b] >>> 12) | (s[b] << 20);
    s[a] = s[a] + s[b] + y; s[d] ^= s[a]; s[d] = (s[d] >>> 8) | (s[d] << 24);
    s[c] = s[c] + s[d]; s[b] ^= s[c]; s[b] = (s[b] >>> 7) | (s[b] << 25);
  }

  // Compresses one block; the result's first 8 words are the new chaining
  // value (all 16 for the root's output).
  function compress(cv, block, counter, blockLength, flags, out) {
    const s = state, m = message;
    for (let i = 0; i < 8; i++) s[i] = cv[i];
    s[8] = IV[0]; s[9] = IV[1]; s[10] = IV[2]; s[11] = IV[3];
    s[12] = counter % 0x100000000; s[13] = Math.floor(counter / 0x100000000);
    s[14] = blockLength; s[15] = flags;
    m.set(block);
    for (let round = 0; round < 7; round++) {
      g(s, 0, 4, 8, 12, m[0], m[1]); g(s, 1, 5, 9, 13, m[2], m[3]);
      g(s, 2, 6, 10, 14, m[4], m[5]); g(s, 3, 7, 11, 15, m[6], m[7]);
      g(s, 0, 5, 10, 15, m[8], m[9]); g(s, 1, 6, 11, 12, m[10], m[11]);
      g(s, 2, 7, 8, 13, m[12], m[13]); g(s, 3, 4, 9, 14, m[14], m[15]);
      if (round < 6) {
        for (let i = 0; i < 16; i++) scratch[i] = m[PERMUTATION[i]];
        m.set(scratch);
      }
    }
    for (let i = 0; i < 8; i++) { out[i] = s[i] ^ s[i + 8]; out[i + 8] = s[i + 8] ^ cv[i]; }
    return out;
  }

  class Hasher {
    constructor() {
      this.cv = new Uint32Array(IV);
      this.chunkCounter = 0;
      this.block = new Uint8Array(64);
      this.blockWords = new Uint32Array(16);
      this.blockLength = 0;
      this.blocksCompressed = 0;
      this.stack = [];
      this.out = new Uint32Array(16);
    }

    words(bytes) {
      const w = this.blockWords;
      for (let i = 0; i < 16; i++) {
        w[i] = bytes[4 * i] | (bytes[4 * i + 1] << 8) | (bytes[4 * i + 2] << 16) | (bytes[4 * i + 3] << 24);
      }
      return w;
    }

    chunkLength() { return this.blocksCompressed * 64 + this.blockLength; }

    update(input) {
      let offset = 0;
      while (offset < input.length) {
        if (this.chunkLength() === 1024) {
          const chunkCv = this.chunkOutput().chainingValue();
          let total = this.chunkCounter + 1;
          this.addChunk(chunkCv, total);
          this.cv = new Uint32Array(IV);
          this.chunkCounter = total;
          this.blocksCompressed = 0;
          this.blockLength = 0;
        }
        if (this.blockLength === 64) {
          const flags = this.blocksCompressed === 0 ? CHUNK_START : 0;
          compress(this.cv, this.words(this.block), this.chunkCounter, 64, flags, this.out);
          this.cv = this.out.slice(0, 8);
          this.blocksCompressed++;
          this.blockLength = 0;
        }
        const want = Math.min(64 - this.blockLength, input.length - offset);
        this.block.set(input.subarray(offset, offset + want), this.blockLength);
        this.blockLength += want;
        offset += want;
      }
    }

    chunkOutput() {
      const block = new Uint8Array(64);
      block.set(this.block.subarray(0, this.blockLength));
      const flags = (this.blocksCompressed === 0 ? CHUNK_START : 0) | CHUNK_END;
      return new Output(new Uint32Array(this.cv), new Uint32Array(this.words(block)), this.chunkCounter, this.blockLength, flags);
    }

    addChunk(cv, total) {
      while (total % 2 === 0) {
        cv = parentOutput(this.stack.pop(), cv).chainingValue();
        total /= 2;
      }
      this.stack.push(cv);
    }

    // The digest of everything so far, as hex; the hasher can go on.
    hex() {
      let output = this.chunkOutput();
      for (let i = this.stack.length - 1; i >= 0; i--) {
        output = parentOutput(this.stack[i], output.chainingValue());
      }
      const words = output.root();
      let hex = "";
      for (let i = 0; i < 8; i++) {
        for (let j = 0; j < 4; j++) hex += ((words[i] >>> (8 * j)) & 0xff).toString(16).padStart(2, "0");
      }
      return hex;
    }
  }

  class Output {
    constructor(cv, block, counter, blockLength, flags) {
      Object.assign(this, { cv, block, counter, blockLength, flags });
    }
    chainingValue() {
      return compress(this.cv, this.block, this.counter, this.blockLength, this.flags, new Uint32Array(16)).slice(0, 8);
    }
    root() {
      return compress(this.cv, this.block, 0, this.blockLength, this.flags | ROOT, new Uint32Array(16));
    }
  }

  function parentOutput(left, right) {
    const block = new Uint32Array(16);
    block.set(left, 0);
    block.set(right, 8);
    return new Output(new Uint32Array(IV), block, 0, 64, PARENT);
  }

  global.Blake3 = Hasher;
})(typeof window !== "undefined" ? window : globalThis);
