// The emergency alert: beeps made with WebAudio (no sound files) repeating while any emergency alarm
// is unacknowledged, and a page title that flashes so that a desk in another tab still shows it.
// Silencing stops the beeps until the next new emergency; the title and the banner stay until the
// alarms are acknowledged.

const REPEAT_MS = 2000;
const TONES = [[0, 880], [0.25, 660], [0.5, 880]];  // seconds from the start, Hz

export class EmergencyAlert {
  constructor() {
    this.audio = null;
    this.heard = new Set();  // emergencies the officer silenced: "id@activated_at"
    this.silenced = false;
    this.current = [];
    this.beeper = null;
    this.flasher = null;
    this.baseTitle = document.title;
    this.flashText = "";
  }

  /** Make (or wake) the audio context; browsers allow it only from a click or a key press. */
  unlock() {
    try {
      if (!this.audio) this.audio = new AudioContext();
      if (this.audio.state === "suspended") this.audio.resume().then(() => this.apply(), () => {});
    } catch {
      this.audio = null;  // no audio on this machine: the banner and the title still show it
    }
    this.apply();
  }

  setTitle(base, flash) {
    this.baseTitle = base;
    this.flashText = flash;
    if (!this.flasher) document.title = base;
  }

  /** The unacknowledged emergency alarms now; a new one ends a silence. */
  update(alarms) {
    this.current = alarms.map((a) => `${a.id}@${a.activated_at}`);
    if (this.current.some((key) => !this.heard.has(key))) this.silenced = false;
    this.apply();
  }

  silence() {
    this.silenced = true;
    this.heard = new Set(this.current);
    this.apply();
  }

  /** idle (nothing to sound), sounding, silenced, or blocked (the browser has not allowed audio yet). */
  get status() {
    if (!this.current.length) return "idle";
    if (this.silenced) return "silenced";
    return this.audio && this.audio.state === "running" ? "sounding" : "blocked";
  }

  apply() {
    const status = this.status;
    document.body.dataset.sound = status;
    if (status === "sounding" && !this.beeper) {
      this.beep();
      this.beeper = setInterval(() => this.beep(), REPEAT_MS);
    } else if (status !== "sounding" && this.beeper) {
      clearInterval(this.beeper);
      this.beeper = null;
    }
    if (this.current.length && !this.flasher) {
      let on = false;
      this.flasher = setInterval(() => {
        on = !on;
        document.title = on ? this.flashText : this.baseTitle;
      }, 1000);
    } else if (!this.current.length && this.flasher) {
      clearInterval(this.flasher);
      this.flasher = null;
      document.title = this.baseTitle;
    }
  }

  beep() {
    const ctx = this.audio;
    if (!ctx || ctx.state !== "running") return;
    const start = ctx.currentTime + 0.05;
    for (const [offset, hz] of TONES) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.22);
    }
  }
}
