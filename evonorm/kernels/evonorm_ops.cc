// Fused CPU kernels for EvoNorm-S0 and EvoNorm-B0 (forward with affine, and their gradients).
//
// Why: on CPU every TensorFlow elementwise op is one pass over memory, and autodiff of the formulas keeps
// every intermediate alive. These kernels read the NHWC input a few times per direction and keep only
// per-(sample, group) or per-(sample, channel) statistics for the backward pass. Math (see fast_ops.py for
// the derivations, and tests/layers/test_kernels.py for the checks against autodiff):
//   S0: out = x * sigmoid(v x) * rstd_g * gamma + beta,   rstd_g = 1/sqrt(var_{h,w,c/g}(x) + eps)
//   B0: out = x / max(a, v x + d) * gamma + beta,  a = sqrt(var_{b,h,w}(x)+eps), d = sqrt(var_{h,w}(x)+eps)
// Work is split across samples with TensorFlow's intra-op thread pool.

#include <cmath>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace evonorm {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;

namespace {

inline float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// Runs fn(begin, end) over samples [0, batch) on the intra-op thread pool.
template <typename Fn>
void ForEachSample(OpKernelContext* ctx, int64_t batch, int64_t cost_per_sample, Fn fn) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, batch, cost_per_sample,
                    [&](int64_t begin, int64_t end) { fn(begin, end); });
}

// Views an input of shape [B, spatial..., C] as (B, P, C).
struct Dims {
  int64_t b, p, c;
};

tensorflow::Status GetDims(const Tensor& x, Dims* d) {
  if (x.dims() < 3) return InvalidArgument("EvoNorm kernels need rank >= 3 (batch, spatial..., channels)");
  d->b = x.dim_size(0);
  d->c = x.dim_size(x.dims() - 1);
  d->p = x.NumElements() / std::max<int64_t>(d->b * d->c, 1);
  return tensorflow::OkStatus();
}

// Per-channel sums over positions of one sample.
void ChannelSums(const float* __restrict__ x, const Dims& d, float* __restrict__ sum,
                 float* __restrict__ sq, const float* __restrict__ shift) {
  for (int64_t c = 0; c < d.c; ++c) sum[c] = sq[c] = 0.f;
  for (int64_t p = 0; p < d.p; ++p) {
    const float* row = x + p * d.c;
    for (int64_t c = 0; c < d.c; ++c) {
      float v = row[c] - shift[c];
      sum[c] += v;
      sq[c] += v * v;
    }
  }
}


// Row kernels: one spatial position, all channels. Separate functions with __restrict__ pointers so the
// compiler knows outputs never alias inputs and vectorizes the channel loop (sigmoid included).
#define EVN_R __restrict__

void S0ForwardRow(int64_t C, const float* EVN_R x, const float* EVN_R v1, const float* EVN_R scale,
                  const float* EVN_R beta, float* EVN_R y) {
  for (int64_t c = 0; c < C; ++c) y[c] = x[c] * Sigmoid(v1[c] * x[c]) * scale[c] + beta[c];
}

void S0GradSumsRow(int64_t C, const float* EVN_R x, const float* EVN_R g, const float* EVN_R v1,
                   float* EVN_R sgn, float* EVN_R pg, float* EVN_R pb, float* EVN_R pv) {
  for (int64_t c = 0; c < C; ++c) {
    float v = x[c], gr = g[c];
    float s = Sigmoid(v1[c] * v);
    float gn = gr * v * s;
    sgn[c] += gn;
    pg[c] += gn;
    pb[c] += gr;
    pv[c] += gn * v * (1.f - s);
  }
}

void S0GradDxRow(int64_t C, const float* EVN_R x, const float* EVN_R g, const float* EVN_R v1,
                 const float* EVN_R gr_scale, const float* EVN_R mu, const float* EVN_R coef,
                 float* EVN_R dx) {
  for (int64_t c = 0; c < C; ++c) {
    float v = x[c];
    float s = Sigmoid(v1[c] * v);
    dx[c] = g[c] * gr_scale[c] * (s + v1[c] * v * s * (1.f - s)) - (v - mu[c]) * coef[c];
  }
}

void B0ForwardRow(int64_t C, const float* EVN_R x, const float* EVN_R v1, const float* EVN_R a,
                  const float* EVN_R d, const float* EVN_R gamma, const float* EVN_R beta, float* EVN_R y) {
  for (int64_t c = 0; c < C; ++c) {
    float m = std::max(a[c], v1[c] * x[c] + d[c]);
    y[c] = x[c] / m * gamma[c] + beta[c];
  }
}

void B0GradSumsRow(int64_t C, const float* EVN_R x, const float* EVN_R g, const float* EVN_R v1,
                   const float* EVN_R a, const float* EVN_R d, const float* EVN_R gamma, float* EVN_R stq,
                   float* EVN_R pv, float* EVN_R pa, float* EVN_R pg, float* EVN_R pb) {
  for (int64_t c = 0; c < C; ++c) {
    float v = x[c], gr = g[c];
    float q = v1[c] * v + d[c];
    bool use_q = q > a[c];
    float inv = 1.f / (use_q ? q : a[c]);
    float vinv = v * inv;
    float t = -gr * gamma[c] * vinv * inv;
    float tq = use_q ? t : 0.f;
    stq[c] += tq;
    pv[c] += tq * v;
    pa[c] += t - tq;
    pg[c] += gr * vinv;
    pb[c] += gr;
  }
}

void B0GradDxRow(int64_t C, const float* EVN_R x, const float* EVN_R g, const float* EVN_R v1,
                 const float* EVN_R a, const float* EVN_R d, const float* EVN_R gamma, const float* EVN_R mu,
                 const float* EVN_R inst_coef, const float* EVN_R bmean, const float* EVN_R batch_coef,
                 float* EVN_R dx) {
  for (int64_t c = 0; c < C; ++c) {
    float v = x[c];
    float gy = g[c] * gamma[c];
    float q = v1[c] * v + d[c];
    bool use_q = q > a[c];
    float inv = 1.f / (use_q ? q : a[c]);
    float tq = use_q ? -gy * v * inv * inv : 0.f;
    dx[c] = gy * inv + v1[c] * tq + (v - mu[c]) * inst_coef[c] + (v - bmean[c]) * batch_coef[c];
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------------
// EvoNorm-S0
// ------------------------------------------------------------------------------------------------------

REGISTER_OP("EvonormS0")
    .Input("x: float")
    .Input("v1: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: float")
    .Output("mean: float")
    .Output("rstd: float")
    .Attr("groups: int >= 1")
    .Attr("epsilon: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      int groups;
      TF_RETURN_IF_ERROR(c->GetAttr("groups", &groups));
      auto batch = c->Dim(c->input(0), 0);
      c->set_output(1, c->MakeShape({batch, groups}));
      c->set_output(2, c->MakeShape({batch, groups}));
      return tensorflow::OkStatus();
    });

class EvonormS0Op : public OpKernel {
 public:
  explicit EvonormS0Op(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &eps_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Dims d;
    OP_REQUIRES_OK(ctx, GetDims(x, &d));
    OP_REQUIRES(ctx, d.c % groups_ == 0, InvalidArgument("channels not divisible by groups"));
    const float* v1 = ctx->input(1).flat<float>().data();
    const float* gamma = ctx->input(2).flat<float>().data();
    const float* beta = ctx->input(3).flat<float>().data();
    Tensor *y, *mean_t, *rstd_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({d.b, groups_}), &mean_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({d.b, groups_}), &rstd_t));
    const float* xd = x.flat<float>().data();
    float* yd = y->flat<float>().data();
    float* mean = mean_t->flat<float>().data();
    float* rstd = rstd_t->flat<float>().data();
    const int64_t G = groups_, cg = d.c / groups_;
    const float n = static_cast<float>(d.p * cg);
    ForEachSample(ctx, d.b, d.p * d.c * 40, [&](int64_t begin, int64_t end) {
      std::vector<float> sum(d.c), sq(d.c), shift(d.c, 0.f), scale(d.c), gmean(d.c);
      for (int64_t b = begin; b < end; ++b) {
        const float* xb = xd + b * d.p * d.c;
        // Shifted sums (shift = first position's value) keep the one-pass variance accurate.
        for (int64_t c = 0; c < d.c; ++c) shift[c] = xb[c];
        ChannelSums(xb, d, sum.data(), sq.data(), shift.data());
        for (int64_t g = 0; g < G; ++g) {
          double s = 0, s2 = 0;
          const double sh = shift[g * cg];
          for (int64_t k = g * cg; k < (g + 1) * cg; ++k) {
            // Re-center every channel's shifted sums on the group's common shift (channel 0 of the group).
            double delta = shift[k] - sh;
            s += sum[k] + d.p * delta;
            s2 += sq[k] + 2.0 * delta * sum[k] + d.p * delta * delta;
          }
          double m = s / n;
          double var = std::max(s2 / n - m * m, 0.0);
          mean[b * G + g] = static_cast<float>(m + sh);
          rstd[b * G + g] = static_cast<float>(1.0 / std::sqrt(var + eps_));
          for (int64_t k = g * cg; k < (g + 1) * cg; ++k) scale[k] = rstd[b * G + g] * gamma[k];
        }
        float* yb = yd + b * d.p * d.c;
        for (int64_t p = 0; p < d.p; ++p) {
          S0ForwardRow(d.c, xb + p * d.c, v1, scale.data(), beta, yb + p * d.c);
        }
      }
    });
  }

 private:
  int groups_;
  float eps_;
};

REGISTER_KERNEL_BUILDER(Name("EvonormS0").Device(DEVICE_CPU), EvonormS0Op);

REGISTER_OP("EvonormS0Grad")
    .Input("dy: float")
    .Input("x: float")
    .Input("v1: float")
    .Input("gamma: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Output("dx: float")
    .Output("dv1: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("groups: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(2));
      c->set_output(3, c->input(2));
      return tensorflow::OkStatus();
    });

class EvonormS0GradOp : public OpKernel {
 public:
  explicit EvonormS0GradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy_t = ctx->input(0);
    const Tensor& x = ctx->input(1);
    Dims d;
    OP_REQUIRES_OK(ctx, GetDims(x, &d));
    const float* dy = dy_t.flat<float>().data();
    const float* xd = x.flat<float>().data();
    const float* v1 = ctx->input(2).flat<float>().data();
    const float* gamma = ctx->input(3).flat<float>().data();
    const float* mean = ctx->input(4).flat<float>().data();
    const float* rstd = ctx->input(5).flat<float>().data();
    Tensor *dx_t, *dv1_t, *dg_t, *db_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({d.c}), &dv1_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({d.c}), &dg_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({d.c}), &db_t));
    float* dx = dx_t->flat<float>().data();
    const int64_t G = groups_, cg = d.c / groups_;
    const float n = static_cast<float>(d.p * cg);
    // Per-sample partial parameter gradients, reduced after the parallel section (no races).
    std::vector<float> part(3 * d.b * d.c, 0.f);
    ForEachSample(ctx, d.b, d.p * d.c * 80, [&](int64_t begin, int64_t end) {
      std::vector<float> sgn(d.c), coef(d.c), r(d.c), mu(d.c), gscale(d.c);
      for (int64_t b = begin; b < end; ++b) {
        const float* xb = xd + b * d.p * d.c;
        const float* gb = dy + b * d.p * d.c;
        float* pv = part.data() + (0 * d.b + b) * d.c;
        float* pg = part.data() + (1 * d.b + b) * d.c;
        float* pb = part.data() + (2 * d.b + b) * d.c;
        for (int64_t c = 0; c < d.c; ++c) {
          r[c] = rstd[b * G + c / cg];
          mu[c] = mean[b * G + c / cg];
          sgn[c] = 0.f;
        }
        // Pass 1: per-channel sums of gy * n (for the variance path) and the parameter gradients.
        for (int64_t p = 0; p < d.p; ++p) {
          S0GradSumsRow(d.c, xb + p * d.c, gb + p * d.c, v1, sgn.data(), pg, pb, pv);
        }
        for (int64_t c = 0; c < d.c; ++c) {
          pg[c] *= r[c];
          pv[c] *= gamma[c] * r[c];
        }
        for (int64_t g = 0; g < G; ++g) {
          double s = 0;
          for (int64_t k = g * cg; k < (g + 1) * cg; ++k) s += sgn[k] * gamma[k];
          float rg = rstd[b * G + g];
          for (int64_t k = g * cg; k < (g + 1) * cg; ++k) coef[k] = static_cast<float>(s) * rg * rg * rg / n;
        }
        // Pass 2: dx.
        float* dxb = dx + b * d.p * d.c;
        for (int64_t c = 0; c < d.c; ++c) gscale[c] = gamma[c] * r[c];
        for (int64_t p = 0; p < d.p; ++p) {
          S0GradDxRow(d.c, xb + p * d.c, gb + p * d.c, v1, gscale.data(), mu.data(), coef.data(),
                      dxb + p * d.c);
        }
      }
    });
    float* dv1 = dv1_t->flat<float>().data();
    float* dg = dg_t->flat<float>().data();
    float* db = db_t->flat<float>().data();
    for (int64_t c = 0; c < d.c; ++c) dv1[c] = dg[c] = db[c] = 0.f;
    for (int64_t b = 0; b < d.b; ++b) {
      for (int64_t c = 0; c < d.c; ++c) {
        dv1[c] += part[(0 * d.b + b) * d.c + c];
        dg[c] += part[(1 * d.b + b) * d.c + c];
        db[c] += part[(2 * d.b + b) * d.c + c];
      }
    }
  }

 private:
  int groups_;
};

REGISTER_KERNEL_BUILDER(Name("EvonormS0Grad").Device(DEVICE_CPU), EvonormS0GradOp);

// ------------------------------------------------------------------------------------------------------
// EvoNorm-B0
// ------------------------------------------------------------------------------------------------------

REGISTER_OP("EvonormB0")
    .Input("x: float")
    .Input("v1: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Input("moving_var: float")
    .Output("y: float")
    .Output("batch_mean: float")
    .Output("batch_var: float")
    .Output("inst_mean: float")
    .Output("inst_std: float")
    .Attr("epsilon: float")
    .Attr("training: bool")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      auto channels = c->Dim(c->input(0), -1);
      auto batch = c->Dim(c->input(0), 0);
      c->set_output(1, c->MakeShape({channels}));
      c->set_output(2, c->MakeShape({channels}));
      c->set_output(3, c->MakeShape({batch, channels}));
      c->set_output(4, c->MakeShape({batch, channels}));
      return tensorflow::OkStatus();
    });

class EvonormB0Op : public OpKernel {
 public:
  explicit EvonormB0Op(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &eps_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("training", &training_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Dims d;
    OP_REQUIRES_OK(ctx, GetDims(x, &d));
    const float* v1 = ctx->input(1).flat<float>().data();
    const float* gamma = ctx->input(2).flat<float>().data();
    const float* beta = ctx->input(3).flat<float>().data();
    const float* moving = ctx->input(4).flat<float>().data();
    Tensor *y, *bm_t, *bv_t, *im_t, *is_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({d.c}), &bm_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({d.c}), &bv_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({d.b, d.c}), &im_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({d.b, d.c}), &is_t));
    const float* xd = x.flat<float>().data();
    float* bm = bm_t->flat<float>().data();
    float* bv = bv_t->flat<float>().data();
    float* im = im_t->flat<float>().data();
    float* istd = is_t->flat<float>().data();
    std::vector<float> ivar(d.b * d.c);
    const float np = static_cast<float>(d.p);
    // Pass 1: per-(sample, channel) mean and variance.
    ForEachSample(ctx, d.b, d.p * d.c * 4, [&](int64_t begin, int64_t end) {
      std::vector<float> sum(d.c), sq(d.c), shift(d.c);
      for (int64_t b = begin; b < end; ++b) {
        const float* xb = xd + b * d.p * d.c;
        for (int64_t c = 0; c < d.c; ++c) shift[c] = xb[c];
        ChannelSums(xb, d, sum.data(), sq.data(), shift.data());
        for (int64_t c = 0; c < d.c; ++c) {
          float m = sum[c] / np;
          float v = std::max(sq[c] / np - m * m, 0.f);
          im[b * d.c + c] = m + shift[c];
          ivar[b * d.c + c] = v;
          istd[b * d.c + c] = std::sqrt(v + eps_);
        }
      }
    });
    // Batch statistics from the per-sample ones: var = mean of variances + variance of means (exact).
    for (int64_t c = 0; c < d.c; ++c) {
      double m = 0, v = 0, mm = 0;
      for (int64_t b = 0; b < d.b; ++b) m += im[b * d.c + c];
      m /= d.b;
      for (int64_t b = 0; b < d.b; ++b) {
        double dm = im[b * d.c + c] - m;
        v += ivar[b * d.c + c];
        mm += dm * dm;
      }
      bm[c] = static_cast<float>(m);
      bv[c] = training_ ? static_cast<float>((v + mm) / d.b) : moving[c];
    }
    std::vector<float> a(d.c);
    for (int64_t c = 0; c < d.c; ++c) a[c] = std::sqrt(bv[c] + eps_);
    float* yd = y->flat<float>().data();
    // Pass 2: output.
    ForEachSample(ctx, d.b, d.p * d.c * 6, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const float* xb = xd + b * d.p * d.c;
        float* yb = yd + b * d.p * d.c;
        const float* ds = istd + b * d.c;
        for (int64_t p = 0; p < d.p; ++p) {
          B0ForwardRow(d.c, xb + p * d.c, v1, a.data(), ds, gamma, beta, yb + p * d.c);
        }
      }
    });
  }

 private:
  float eps_;
  bool training_;
};

REGISTER_KERNEL_BUILDER(Name("EvonormB0").Device(DEVICE_CPU), EvonormB0Op);

REGISTER_OP("EvonormB0Grad")
    .Input("dy: float")
    .Input("x: float")
    .Input("v1: float")
    .Input("gamma: float")
    .Input("batch_mean: float")
    .Input("batch_var: float")
    .Input("inst_mean: float")
    .Input("inst_std: float")
    .Output("dx: float")
    .Output("dv1: float")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("epsilon: float")
    .Attr("training: bool")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      c->set_output(2, c->input(2));
      c->set_output(3, c->input(2));
      return tensorflow::OkStatus();
    });

class EvonormB0GradOp : public OpKernel {
 public:
  explicit EvonormB0GradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &eps_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("training", &training_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(1);
    Dims d;
    OP_REQUIRES_OK(ctx, GetDims(x, &d));
    const float* dy = ctx->input(0).flat<float>().data();
    const float* xd = x.flat<float>().data();
    const float* v1 = ctx->input(2).flat<float>().data();
    const float* gamma = ctx->input(3).flat<float>().data();
    const float* bmean = ctx->input(4).flat<float>().data();
    const float* bvar = ctx->input(5).flat<float>().data();
    const float* imean = ctx->input(6).flat<float>().data();
    const float* istd = ctx->input(7).flat<float>().data();
    Tensor *dx_t, *dv1_t, *dg_t, *db_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({d.c}), &dv1_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({d.c}), &dg_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({d.c}), &db_t));
    std::vector<float> a(d.c);
    for (int64_t c = 0; c < d.c; ++c) a[c] = std::sqrt(bvar[c] + eps_);
    // part: per-sample partial sums of dv1, dgamma, dbeta, ta (batch branch), and sum_hw(tq) per (b, c).
    std::vector<float> part(4 * d.b * d.c, 0.f), stq(d.b * d.c, 0.f);
    ForEachSample(ctx, d.b, d.p * d.c * 10, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const float* xb = xd + b * d.p * d.c;
        const float* gb = dy + b * d.p * d.c;
        const float* ds = istd + b * d.c;
        float* pv = part.data() + (0 * d.b + b) * d.c;
        float* pg = part.data() + (1 * d.b + b) * d.c;
        float* pb = part.data() + (2 * d.b + b) * d.c;
        float* pa = part.data() + (3 * d.b + b) * d.c;
        float* sq = stq.data() + b * d.c;
        for (int64_t p = 0; p < d.p; ++p) {
          B0GradSumsRow(d.c, xb + p * d.c, gb + p * d.c, v1, a.data(), ds, gamma, sq, pv, pa, pg, pb);
        }
      }
    });
    float* dv1 = dv1_t->flat<float>().data();
    float* dg = dg_t->flat<float>().data();
    float* db = db_t->flat<float>().data();
    std::vector<float> ta(d.c, 0.f);
    for (int64_t c = 0; c < d.c; ++c) dv1[c] = dg[c] = db[c] = 0.f;
    for (int64_t b = 0; b < d.b; ++b) {
      for (int64_t c = 0; c < d.c; ++c) {
        dv1[c] += part[(0 * d.b + b) * d.c + c];
        dg[c] += part[(1 * d.b + b) * d.c + c];
        db[c] += part[(2 * d.b + b) * d.c + c];
        ta[c] += part[(3 * d.b + b) * d.c + c];
      }
    }
    const float n_bhw = static_cast<float>(d.b * d.p);
    std::vector<float> batch_coef(d.c, 0.f);
    if (training_) {
      for (int64_t c = 0; c < d.c; ++c) batch_coef[c] = ta[c] / (n_bhw * a[c]);
    }
    float* dx = dx_t->flat<float>().data();
    const float np = static_cast<float>(d.p);
    ForEachSample(ctx, d.b, d.p * d.c * 10, [&](int64_t begin, int64_t end) {
      std::vector<float> inst_coef(d.c);
      for (int64_t b = begin; b < end; ++b) {
        const float* xb = xd + b * d.p * d.c;
        const float* gb = dy + b * d.p * d.c;
        const float* ds = istd + b * d.c;
        const float* mu = imean + b * d.c;
        for (int64_t c = 0; c < d.c; ++c) inst_coef[c] = stq[b * d.c + c] / (np * ds[c]);
        float* dxb = dx + b * d.p * d.c;
        for (int64_t p = 0; p < d.p; ++p) {
          B0GradDxRow(d.c, xb + p * d.c, gb + p * d.c, v1, a.data(), ds, gamma, mu, inst_coef.data(), bmean,
                      batch_coef.data(), dxb + p * d.c);
        }
      }
    });
  }

 private:
  float eps_;
  bool training_;
};

REGISTER_KERNEL_BUILDER(Name("EvonormB0Grad").Device(DEVICE_CPU), EvonormB0GradOp);

}  // namespace evonorm
