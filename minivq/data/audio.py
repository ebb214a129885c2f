"""The log-mel front end: waveform -> (T, 40) log-mel spectrogram in dB, and its uint8 storage.

Frames, a Hann window, the power spectrum, triangular filters evenly spaced
in mel, 10 log10. ``data_small/build.py`` runs it on every synthesized word;
``notebooks/00_data.ipynb`` draws the filterbank.
"""
import numpy as np

from ..checks.arrays import MAX_SIZE, check_float_dtype, check_int, check_number, check_real

SAMPLE_RATE = 16000
N_MELS = 40
WIN_MS = 25.0
HOP_MS = 10.0
N_FFT = 512


_MEL_MAX = 2595.0 * np.log10(np.finfo(np.float64).max / 700.0)  # the mel of the largest float64 frequency


def hz_to_mel(f):
    """Hertz (>= 0, float or ndarray) -> mel on the HTK scale, m = 2595 log10(1 + f / 700)."""
    f = check_real(f, "f", "(frequencies in Hz, >= 0)", nonnegative=True)
    return 2595.0 * np.log10(1.0 + f.astype(np.float64) / 700.0)


def mel_to_hz(m):
    """Mel (0 to about 8e5, float or ndarray) -> hertz, the inverse of :func:`hz_to_mel`: f = 700 (10^(m / 2595) - 1)."""
    m = check_real(m, "m", "(pitches in mel, >= 0)", nonnegative=True).astype(np.float64)
    if m.size and m.max() > _MEL_MAX:
        raise ValueError(f"m must be at most {_MEL_MAX:.6g} mel (the largest float64 frequency), got {m.max()!r}")
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels=N_MELS, n_fft=N_FFT, sr=SAMPLE_RATE, fmin=0.0, fmax=None):
    """Triangular mel filters over the ``n_fft // 2 + 1`` bins of a real FFT at sample rate ``sr``.

    Returns
    -------
    fb : ndarray, shape (n_mels, n_fft // 2 + 1), float64
        Row i rises from edge i to 1 at edge i + 1 and falls to 0 at edge
        i + 2, for n_mels + 2 edges equally spaced in mel from fmin to fmax
        (None: sr / 2). No area normalization.
    """
    n_mels, n_fft = check_int(n_mels, "n_mels", 1, 4096), check_int(n_fft, "n_fft", 1, 1 << 20)
    sr = check_number(sr, "sr", 1)
    fmin = check_number(fmin, "fmin", 0)
    fmax = sr / 2.0 if fmax is None else check_number(fmax, "fmax", 0)
    if not 0.0 <= fmin < fmax <= sr / 2.0:
        raise ValueError(f"fmin and fmax must satisfy 0 <= fmin < fmax <= sr/2 = {sr / 2}; got fmin={fmin}, "
                         f"fmax={fmax}")
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels+2,)
    bins_hz = np.arange(n_fft // 2 + 1) * sr / n_fft  # (n_bins,)
    lo, mid, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]  # (n_mels, 1)
    if not (np.diff(edges_hz) > 0).all():
        raise ValueError(f"fmin and fmax must leave room for n_mels = {n_mels} filters, got fmin={fmin}, fmax={fmax}")
    rising = (bins_hz - lo) / (mid - lo)  # (n_mels, n_bins)
    falling = (hi - bins_hz) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


def frame_signal(wave, win_length, hop_length):
    """Frames (T, win_length) of a signal (N,): frame t is ``wave[t * hop : t * hop + win]``, no padding.

    T = 1 + (N - win_length) // hop_length, 0 if N < win_length.
    """
    wave = check_real(wave, "wave", "(N,)", ndim=1).astype(np.float64)
    if wave.size and np.abs(wave).max() > 1e100:  # so that its power spectrum fits float64
        raise ValueError(f"wave must hold samples with |wave| <= 1e100, got {np.abs(wave).max():.3g}")
    win_length, hop_length = check_int(win_length, "win_length", 1), check_int(hop_length, "hop_length", 1)
    (N,) = wave.shape
    T = 0 if N < win_length else 1 + (N - win_length) // hop_length
    starts = hop_length * np.arange(T)[:, None]  # (T, 1)
    return wave[starts + np.arange(win_length)[None, :]]  # (T, win_length)


def power_spectrogram(wave, sr=SAMPLE_RATE, win_ms=WIN_MS, hop_ms=HOP_MS, n_fft=N_FFT):
    """Hann-windowed short-time power spectrum |FFT|^2 (T, n_fft // 2 + 1) of a signal (N,).

    Windows of ``win_ms`` every ``hop_ms`` milliseconds at sample rate ``sr``,
    zero-padded to ``n_fft`` >= the window length.
    """
    sr = check_number(sr, "sr", 1)
    win_ms = check_number(win_ms, "win_ms", 0, low_open=True)
    hop_ms = check_number(hop_ms, "hop_ms", 0, low_open=True)
    if sr * max(win_ms, hop_ms) / 1000.0 > MAX_SIZE:
        raise ValueError(f"win_ms and hop_ms must span at most {MAX_SIZE} samples at sr = {sr:g}, got "
                         f"{win_ms} and {hop_ms} ms")
    win_length = int(round(sr * win_ms / 1000.0))
    hop_length = int(round(sr * hop_ms / 1000.0))
    if win_length < 1 or hop_length < 1:
        raise ValueError(f"win_ms and hop_ms must span at least one sample at sr = {sr:g}, got {win_length} "
                         f"and {hop_length} samples")
    n_fft = check_int(n_fft, "n_fft", 1, 1 << 20)
    if n_fft < win_length:
        raise ValueError(f"n_fft must be >= the window length {win_length}, got {n_fft}")
    frames = frame_signal(wave, win_length, hop_length)  # (T, win)
    window = np.hanning(win_length + 2)[1:-1]  # Hann without its zero end points
    spectrum = np.fft.rfft(frames * window, n=n_fft, axis=1)  # (T, n_fft//2+1) complex
    return spectrum.real ** 2 + spectrum.imag ** 2


def log_mel(wave, sr=SAMPLE_RATE, n_mels=N_MELS, win_ms=WIN_MS, hop_ms=HOP_MS,
            n_fft=N_FFT, floor=1e-10):
    """Log-mel spectrogram (T, n_mels) in dB of a waveform (N,): 10 log10(max(power @ fb.T, floor)).

    The arguments are those of :func:`power_spectrogram` and
    :func:`mel_filterbank`; ``floor`` keeps silence finite.
    """
    floor = check_number(floor, "floor", 1e-300, low_open=False)
    power = power_spectrogram(wave, sr, win_ms, hop_ms, n_fft)  # (T, n_bins)
    fb = mel_filterbank(n_mels, n_fft, sr)  # (n_mels, n_bins)
    return 10.0 * np.log10(np.maximum(power @ fb.T, floor))  # (T, n_mels)


def quantize_uint8(x, lo, step):
    """Store values as uint8, q = clip(round((x - lo) / step), 0, 255): ``lo`` is coded 0, ``step`` is one level."""
    x = check_real(x, "x", "(any shape)").astype(np.float64)  # the same levels for any input dtype
    lo, step = check_number(lo, "lo"), check_number(step, "step", 0, low_open=True)
    with np.errstate(over="ignore"):  # beyond the 256 levels: clipped to 0 or 255 anyway
        return np.asarray(np.clip(np.rint((x - lo) / step), 0, 255).astype(np.uint8))


def dequantize_uint8(q, lo, step, dtype=np.float32):
    """Invert :func:`quantize_uint8` to within step / 2: x = lo + q * step, in ``dtype``."""
    q = check_real(q, "q", "(any shape), uint8")
    if q.dtype != np.uint8:
        raise TypeError(f"q must have dtype uint8, got {q.dtype}")
    dt = check_float_dtype(dtype)
    lo, step = check_number(lo, "lo"), check_number(step, "step", 0, low_open=True)
    big = float(np.finfo(dt).max)
    if abs(lo) > big or abs(lo) + 255 * step > big:
        raise ValueError(f"lo and step must keep lo + 255 step within {dt} (|x| <= {big:.3g}), got lo={lo!r}, "
                         f"step={step!r}")
    return np.asarray((dt.type(lo) + q.astype(dt) * dt.type(step)).astype(dt))
