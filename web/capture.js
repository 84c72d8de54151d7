// The microphone's audio worklet: hands the page the microphone's samples
// in pieces of about 100 ms (the page sends them to Workly as 16-bit PCM).
// It runs in the audio thread; the page's AudioContext runs at 16 kHz, so
// the browser has already resampled what the microphone gives.

const PIECE = 1600;

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.piece = new Float32Array(PIECE);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0]?.[0];
    if (channel) {
      let offset = 0;
      while (offset < channel.length) {
        const take = Math.min(channel.length - offset, PIECE - this.filled);
        this.piece.set(channel.subarray(offset, offset + take), this.filled);
        this.filled += take;
        offset += take;
        if (this.filled === PIECE) {
          this.port.postMessage(this.piece.slice());
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor('workly-capture', Capture);
