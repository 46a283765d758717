"""PyTorch side of one end-to-end benchmark row (bench/run.ts starts it; same protocol as
tunekit-worker.ts): builds the row's model from the same RowSpec JSON, warms up, prints
{"ready": true}; each "rep" line runs one timed repetition and prints {"ms": ...}; "end" prints
{"maxRssKB": ...} (ru_maxrss of this process) and exits.

transformers/peft are not in Debian, and current transformers needs torch >= 2 anyway, so the text
models are written here after HF's modeling files as they run on torch 1.13 (eager attention:
matmul, mask, softmax, matmul) and LoRA after PEFT's lora.Linear. The CNNs are torchvision's.

usage: python3 torch_worker.py '<RowSpec JSON>' <threads>
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

spec = json.loads(sys.argv[1])
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)


# ---- LoRA (PEFT lora.Linear: y = base(x) + B(A(dropout(x))) * alpha / r) -----------------------


class LoraLinear(nn.Module):
    def __init__(self, base, r, alpha, fan_in_fan_out=False):
        super().__init__()
        self.base = base
        self.fan_in_fan_out = fan_in_fan_out
        w = base.weight
        out_f, in_f = (w.shape[1], w.shape[0]) if fan_in_fan_out else w.shape
        self.lora_A = nn.Linear(in_f, r, bias=False)
        self.lora_B = nn.Linear(r, out_f, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def apply_lora(model, targets, r, alpha):
    """Freezes everything, then wraps the target linear layers (PEFT's get_peft_model)."""
    for p in model.parameters():
        p.requires_grad_(False)
    heads = ("lm_head", "score", "classifier")
    swaps = []
    for name, mod in model.named_modules():
        leaf = name.split(".")[-1]
        is_lin = isinstance(mod, (nn.Linear, Conv1D))
        if not is_lin:
            continue
        if targets == "all-linear":
            if leaf in heads:
                continue
        elif leaf not in targets:
            continue
        swaps.append(name)
    for name in swaps:
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        base = getattr(parent, leaf)
        setattr(parent, leaf, LoraLinear(base, r, alpha, fan_in_fan_out=isinstance(base, Conv1D)))
    return model


# ---- GPT-2 (transformers modeling_gpt2.py, eager attention, no dropout: tunekit's has none) -----


class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.weight.size(-1),)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.n_embd = c["n_head"], c["n_embd"]
        self.c_attn = Conv1D(3 * self.n_embd, self.n_embd)
        self.c_proj = Conv1D(self.n_embd, self.n_embd)
        n = c["n_positions"]
        self.register_buffer("bias", torch.tril(torch.ones(n, n, dtype=torch.bool)).view(1, 1, n, n), persistent=False)

    def forward(self, x, past=None):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            if past[0] is not None:
                k = torch.cat((past[0], k), dim=-2)
                v = torch.cat((past[1], v), dim=-2)
            past[0], past[1] = k, v
        w = torch.matmul(q, k.transpose(-1, -2)) / (D ** 0.5)
        S = k.size(-2)
        causal = self.bias[:, :, S - T : S, :S]
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        w = F.softmax(w, dim=-1)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPT2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = Conv1D(4 * c["n_embd"], c["n_embd"])
        self.c_proj = Conv1D(c["n_embd"], 4 * c["n_embd"])

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.attn = GPT2Attention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.mlp = GPT2MLP(c)

    def forward(self, x, past=None):
        x = x + self.attn(self.ln_1(x), past)
        return x + self.mlp(self.ln_2(x))


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.h = nn.ModuleList(GPT2Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["layer_norm_epsilon"])
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.lm_head.weight = self.wte.weight  # tied

    def forward(self, ids, labels=None, cache=None):
        past = 0 if cache is None or cache[0][0] is None else cache[0][0].size(-2)
        pos = torch.arange(past, past + ids.size(1)).unsqueeze(0)
        x = self.wte(ids) + self.wpe(pos)
        for i, b in enumerate(self.h):
            x = b(x, None if cache is None else cache[i])
        logits = self.lm_head(self.ln_f(x))
        return logits, lm_loss(logits, labels)


def lm_loss(logits, labels):
    if labels is None:
        return None
    s = logits[..., :-1, :].contiguous()
    y = labels[..., 1:].contiguous()
    return F.cross_entropy(s.view(-1, s.size(-1)), y.view(-1))


# ---- Llama (transformers modeling_llama.py, eager attention, GQA by repeat_kv) -----------------


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, self.H, self.Hkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.D = C // self.H
        self.q_proj = nn.Linear(C, self.H * self.D, bias=False)
        self.k_proj = nn.Linear(C, self.Hkv * self.D, bias=False)
        self.v_proj = nn.Linear(C, self.Hkv * self.D, bias=False)
        self.o_proj = nn.Linear(self.H * self.D, C, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.H // self.Hkv
        k = k[:, :, None].expand(B, self.Hkv, rep, T, self.D).reshape(B, self.H, T, self.D)
        v = v[:, :, None].expand(B, self.Hkv, rep, T, self.D).reshape(B, self.H, T, self.D)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.D) + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32)
        y = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(B, T, -1)
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, I = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(LlamaLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied

    def forward(self, ids, labels=None):
        B, T = ids.shape
        D = self.c["hidden_size"] // self.c["num_attention_heads"]
        inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, D, 2).float() / D))
        freqs = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)[None, None]
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        logits = self.lm_head(self.norm(x))
        return logits, lm_loss(logits, labels)


# ---- DistilBERT (transformers modeling_distilbert.py, train mode: dropout on) ------------------


class DistilBertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dim"]
        self.H = c["n_heads"]
        self.q_lin, self.k_lin, self.v_lin, self.out_lin = (nn.Linear(d, d) for _ in range(4))
        self.attn_dropout = nn.Dropout(c["attention_dropout"])
        self.sa_layer_norm = nn.LayerNorm(d, eps=1e-12)
        self.lin1 = nn.Linear(d, c["hidden_dim"])
        self.lin2 = nn.Linear(c["hidden_dim"], d)
        self.dropout = nn.Dropout(c["dropout"])
        self.output_layer_norm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, mask):
        B, T, C = x.shape
        H, D = self.H, C // self.H
        shape = lambda t: t.view(B, -1, H, D).transpose(1, 2)
        q = shape(self.q_lin(x)) / math.sqrt(D)
        k, v = shape(self.k_lin(x)), shape(self.v_lin(x))
        s = torch.matmul(q, k.transpose(2, 3))
        s = s.masked_fill((mask == 0).view(B, 1, 1, T).expand_as(s), torch.finfo(s.dtype).min)
        w = self.attn_dropout(F.softmax(s, dim=-1))
        ctx = torch.matmul(w, v).transpose(1, 2).contiguous().view(B, -1, C)
        sa = self.sa_layer_norm(self.out_lin(ctx) + x)
        ff = self.dropout(self.lin2(F.gelu(self.lin1(sa))))
        return self.output_layer_norm(ff + sa)


class DistilBertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dim"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], d, padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        self.dropout = nn.Dropout(c["dropout"])
        self.layer = nn.ModuleList(DistilBertLayer(c) for _ in range(c["n_layers"]))
        self.pre_classifier = nn.Linear(d, d)
        self.classifier = nn.Linear(d, c["num_labels"])
        self.cls_dropout = nn.Dropout(c["seq_classif_dropout"])

    def forward(self, ids, mask, labels):
        T = ids.size(1)
        x = self.word_embeddings(ids) + self.position_embeddings(torch.arange(T).unsqueeze(0))
        x = self.dropout(self.LayerNorm(x))
        for layer in self.layer:
            x = layer(x, mask)
        pooled = F.relu(self.pre_classifier(x[:, 0]))
        logits = self.classifier(self.cls_dropout(pooled))
        return logits, F.cross_entropy(logits, labels)


# ---- rows -------------------------------------------------------------------------------------


def adamw(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.01)


def train_step(opt, loss_fn):
    loss = loss_fn()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def torchvision_model(r):
    import torchvision

    return getattr(torchvision.models, r["model"])(num_classes=r["config"]["num_classes"])


def build(r):
    c, B, T = r["config"], r["batch"], r.get("seq", 0)
    kind = r["kind"]
    if kind == "lm-lora":
        model = GPT2LMHeadModel(c) if r["model"] == "gpt2" else LlamaForCausalLM(c)
        lo = r["lora"]
        apply_lora(model, lo["targets"], lo["rank"], lo["alpha"])
        model.train()
        opt = adamw(model)
        ids = torch.randint(0, c["vocab_size"], (B, T))

        def rep():
            for _ in range(r["stepsPerRep"]):
                train_step(opt, lambda: model(ids, ids)[1])

        return rep
    if kind == "seqcls-full":
        model = DistilBertForSequenceClassification(c).train()
        opt = adamw(model)
        ids = torch.randint(1, c["vocab_size"], (B, T))
        mask = torch.ones(B, T, dtype=torch.long)
        labels = torch.randint(0, c["num_labels"], (B,))

        def rep():
            for _ in range(r["stepsPerRep"]):
                train_step(opt, lambda: model(ids, mask, labels)[1])

        return rep
    if kind == "image-full":
        model = torchvision_model(r).train()
        opt = adamw(model)
        S = r["image"]
        x = torch.randn(B, 3, S, S)
        labels = torch.randint(0, c["num_classes"], (B,))

        def rep():
            for _ in range(r["stepsPerRep"]):
                train_step(opt, lambda: F.cross_entropy(model(x), labels))

        return rep
    if kind == "image-head-cache":
        return head_cache_row(r)
    if kind == "generate":
        model = GPT2LMHeadModel(c).eval()
        prompt = torch.tensor([[(i * 7919) % c["vocab_size"] for i in range(T)]])

        def rep():
            with torch.no_grad():
                cache = [[None, None] for _ in model.h]
                ids = prompt
                for _ in range(r["newTokens"]):
                    logits, _ = model(ids, cache=cache)
                    ids = logits[:, -1].argmax(-1, keepdim=True)

        return rep
    raise ValueError(kind)


def head_cache_row(r):
    """Frozen backbone in eval mode under no_grad once per image, then one head epoch on the cache."""
    N, FB, S, B = r["images"], r["featureBatch"], r["image"], r["batch"]
    model = torchvision_model(r).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    head = model.fc
    head.weight.requires_grad_(True)
    head.bias.requires_grad_(True)
    model.fc = nn.Identity()
    opt = adamw(head)
    x = torch.randn(FB, 3, S, S)
    labels = torch.randint(0, r["config"]["num_classes"], (N,))

    def rep():
        with torch.no_grad():
            feats = torch.cat([model(x) for _ in range(0, N, FB)])[:N]
        order = torch.randperm(N)
        for s in range(0, N, B):
            idx = order[s : s + B]
            train_step(opt, lambda: F.cross_entropy(head(feats[idx]), labels[idx]))

    return rep


rep = build(spec)
for _ in range(spec["warmup"]):
    rep()
print(json.dumps({"ready": True}), flush=True)
faults = 0
for line in sys.stdin:
    line = line.strip()
    if line == "rep":
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        rep()
        ms = (time.perf_counter() - t) * 1e3
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        print(json.dumps({"ms": ms}), flush=True)
    elif line == "end":
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"maxRssKB": ru.ru_maxrss, "minorFaults": faults}), flush=True)
        break
