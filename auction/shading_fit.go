package auction

import (
	"errors"
	"fmt"
	"math"
)

// ObservationKind is what one auction outcome says about the highest competing bid C.
type ObservationKind uint8

// Observation kinds.
const (
	// Won: C was below our bid (Micros).
	Won ObservationKind = iota + 1
	// Outbid: we lost to a higher bid and were not told by how much: C was at or above our bid.
	Outbid
	// MinToWin: we lost and the exchange said the minimum bid to win (Micros): C was about that.
	MinToWin
)

// Observation is one competitive auction outcome, in account micros CPM.
type Observation struct {
	Kind   ObservationKind
	Micros int64   // our bid (Won, Outbid) or the minimum bid to win (MinToWin)
	Weight float64 // 0 means 1; time decay gives older outcomes less
}

// FitConfig bounds what FitLogNormal accepts.
type FitConfig struct {
	// MinObservations is the fewest observations a fit is made from; default 200.
	MinObservations int
	// MinEach is the fewest wins and the fewest losses (of either kind): without both, the data
	// say only on which side of every bid the market was; default 10.
	MinEach int
	// SigmaMin, SigmaMax bound σ; defaults (and limits) the package's SigmaMin and SigmaMax.
	SigmaMin, SigmaMax float64
}

// ErrTooFewObservations is returned by FitLogNormal when the data are too few to fit.
var ErrTooFewObservations = errors.New("too few observations to fit")

// Fit is the result of FitLogNormal.
type Fit struct {
	Mu, Sigma               float64
	N                       int // observations used
	Wins, Outbid, MinToWins int
	Iterations              int
}

// FitLogNormal fits μ and σ of ln C, C the highest competing bid, to censored observations by
// maximum likelihood (see the comment at the top of shading.go). Observations with a non-positive
// amount or weight are skipped.
func FitLogNormal(obs []Observation, cfg FitConfig) (Fit, error) {
	if cfg.MinObservations <= 0 {
		cfg.MinObservations = 200
	}
	if cfg.MinEach <= 0 {
		cfg.MinEach = 10
	}
	if cfg.SigmaMin == 0 {
		cfg.SigmaMin = SigmaMin
	}
	if cfg.SigmaMax == 0 {
		cfg.SigmaMax = SigmaMax
	}
	if !(cfg.SigmaMin >= SigmaMin && cfg.SigmaMin < cfg.SigmaMax && cfg.SigmaMax <= SigmaMax) {
		return Fit{}, fmt.Errorf("fit: sigma bounds [%v, %v] not within [%v, %v]", cfg.SigmaMin, cfg.SigmaMax, SigmaMin, SigmaMax)
	}

	// Standardise ln amounts so the Newton steps are well scaled whatever the currency.
	var f Fit
	var sw, sy, syy float64
	for _, o := range obs {
		w := o.Weight
		if w == 0 {
			w = 1
		}
		if o.Micros <= 0 || !(w > 0) || math.IsInf(w, 1) {
			continue
		}
		switch o.Kind {
		case Won:
			f.Wins++
		case Outbid:
			f.Outbid++
		case MinToWin:
			f.MinToWins++
		default:
			continue
		}
		y := math.Log(float64(o.Micros))
		sw += w
		sy += w * y
		syy += w * y * y
	}
	f.N = f.Wins + f.Outbid + f.MinToWins
	if f.N < cfg.MinObservations || f.Wins < cfg.MinEach || f.Outbid+f.MinToWins < cfg.MinEach {
		return f, fmt.Errorf("fit: %d observations (%d wins, %d losses): %w", f.N, f.Wins, f.Outbid+f.MinToWins, ErrTooFewObservations)
	}
	mean := sy / sw
	sd := math.Sqrt(max(syy/sw-mean*mean, 0))
	sd = max(sd, 0.05)

	type point struct {
		kind ObservationKind
		y, w float64
	}
	pts := make([]point, 0, f.N+2)
	for _, o := range obs {
		w := o.Weight
		if w == 0 {
			w = 1
		}
		if o.Micros <= 0 || !(w > 0) || math.IsInf(w, 1) || o.Kind < Won || o.Kind > MinToWin {
			continue
		}
		pts = append(pts, point{o.Kind, (math.Log(float64(o.Micros)) - mean) / sd, w})
	}
	// The prior: one observation's worth of exact prices at ±1 (the data's own spread), which keeps
	// the maximum finite and matters less as data grow.
	pts = append(pts, point{MinToWin, -1, 0.5}, point{MinToWin, 1, 0.5})

	// Olsen's parameters: h = 1/σ, d = μ/σ (standardised); the log-likelihood is concave in them.
	loglik := func(h, d float64) float64 {
		var ll float64
		for _, p := range pts {
			switch p.kind {
			case Won:
				ll += p.w * logNormCDF(h*p.y-d)
			case Outbid:
				ll += p.w * logNormCDF(d-h*p.y)
			default:
				z := h*p.y - d
				ll += p.w * (math.Log(h) - z*z/2)
			}
		}
		return ll
	}
	h, d := 1.0, 0.0
	ll := loglik(h, d)
	for f.Iterations = 1; f.Iterations <= 100; f.Iterations++ {
		var gh, gd, hhh, hhd, hdd float64
		for _, p := range pts {
			switch p.kind {
			case Won, Outbid:
				s := 1.0
				if p.kind == Outbid {
					s = -1
				}
				w := s * (h*p.y - d)
				g := invMills(w)
				k := g * (w + g) * p.w
				gh += p.w * g * s * p.y
				gd -= p.w * g * s
				hhh -= k * p.y * p.y
				hhd += k * p.y
				hdd -= k
			default:
				z := h*p.y - d
				gh += p.w * (1/h - z*p.y)
				gd += p.w * z
				hhh -= p.w * (1/(h*h) + p.y*p.y)
				hhd += p.w * p.y
				hdd -= p.w
			}
		}
		// Newton step: solve H·Δ = −g for the 2×2 Hessian (negative definite).
		det := hhh*hdd - hhd*hhd
		if !(det > 0) || math.IsNaN(gh+gd) {
			return f, fmt.Errorf("fit: singular Hessian at iteration %d", f.Iterations)
		}
		dh := -(hdd*gh - hhd*gd) / det
		dd := -(-hhd*gh + hhh*gd) / det
		t := 1.0
		var nh, nd, nll float64
		for range 40 {
			nh, nd = h+t*dh, d+t*dd
			if nh > 0 {
				if nll = loglik(nh, nd); nll >= ll-1e-12*math.Abs(ll) {
					break
				}
			}
			t /= 2
		}
		if !(nh > 0) || math.IsNaN(nll) {
			return f, fmt.Errorf("fit: line search failed at iteration %d", f.Iterations)
		}
		step := math.Abs(nh-h) + math.Abs(nd-d)
		h, d, ll = nh, nd, nll
		if step < 1e-10 {
			break
		}
	}
	f.Mu = mean + sd*d/h
	f.Sigma = sd / h
	if math.IsNaN(f.Mu) || math.IsInf(f.Mu, 0) || math.IsNaN(f.Sigma) || math.IsInf(f.Sigma, 0) {
		return f, errors.New("fit: did not converge to finite parameters")
	}
	if f.Sigma < cfg.SigmaMin {
		f.Sigma = cfg.SigmaMin
	}
	if f.Sigma > cfg.SigmaMax {
		f.Sigma = cfg.SigmaMax
	}
	if f.Mu < 0 || f.Mu > MuMax {
		return f, fmt.Errorf("fit: mu %v outside [0, %v]", f.Mu, MuMax)
	}
	return f, nil
}
