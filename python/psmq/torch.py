"""psmq.torch: train a PyTorch model through a psmq broker.

    import psmq, psmq.torch

    worker = psmq.Worker("tcp://server:5555", rank=rank, workers=4)
    optimizer = psmq.torch.DistributedOptimizer(worker, model.named_parameters(),
                                                optimizer="sgd", lr=0.1)
    for x, y in batches:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()   # each gradient is pushed as backward makes it
        optimizer.step()                  # clock, then the new parameters, in place

Every parameter is a key of the broker, named as named_parameters() names
it (with prefix= in front). The optimizer is the broker's: the update rule
and its settings are fixed per parameter group when the keys are made (a
torch LR scheduler that changes param_groups[i]["lr"] changes nothing; use
decay_steps for a cosine decay on the broker). The constructor makes the
keys (init, idempotent: every rank makes them, the first one's values win)
and pulls them into the model, so every rank starts from the same values.

Parameter groups, as torch.optim takes them, each with its own rule:

    DistributedOptimizer(worker, [
        {"params": model.features.named_parameters(prefix="features"), "optimizer": "adam",
         "lr": 1e-3},
        {"params": model.classifier.named_parameters(prefix="classifier")},  # the defaults
    ], optimizer="sgd", lr=0.1)

Overlap (overlap=True, the default): a hook on every parameter pushes its
gradient (push_async, which copies it) as soon as backward has computed it,
so the pushes of the last layers travel while backward still works on the
first ones. step() then waits for those pushes, pushes the .grad of any
parameter whose hook did not fire (a gradient set by hand), sends the
clock, pulls every parameter into the model's own memory (no copy: the
tensors' storage is what the library writes) and waits for the clock.
With overlap=False, step() pushes every .grad in one call instead. A
push that fails in a hook is not raised through autograd: backward
completes, the hooks send nothing more, and step() raises that psmq.Error
(a broker lost; a psmq.RejoinedError, for which resync() is the way back).

Each backward counts as one gradient: two backward calls before one step()
push twice, and the broker's BSP step divides the sum of a clock's pushes
by their count (the mean over micro-batches and workers, where torch.optim
would sum micro-batches).

CPU tensors only. Parameters must be float32, dense and contiguous on the
CPU; a model on CUDA (or any other device) is refused at construction with
a TypeError: move it with model.cpu() (the library reads and writes host
memory; a GPU would need a copy to the host each step, which this module
does not hide).

The hooks run where autograd runs them: for a CPU model, in the thread
that called backward(), which must be the thread that made the worker.
The parameters are written in place outside autograd (as torch.optim's
steps are): do not reuse a graph built before a step() after it.
"""

import numbers

import torch

from .errors import Error
from .worker import Worker

_SETTINGS = ("optimizer", "lr", "momentum", "beta1", "beta2", "eps", "decay_steps", "wire_dtype")


def _named(params, where):
    """[(name, tensor)] from named_parameters()-like pairs."""
    named = []
    for item in params:
        if isinstance(item, torch.Tensor) or not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError("%s: (name, parameter) pairs, as model.named_parameters() gives "
                            "them: the names are the broker's keys" % where)
        name, tensor = item
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError("%s: (str, torch.Tensor) pairs, not (%s, %s)"
                            % (where, type(name).__name__, type(tensor).__name__))
        named.append((name, tensor))
    return named


def _check_parameter(key, tensor):
    if tensor.device.type != "cpu":
        raise TypeError("parameter %r is on %s: psmq.torch moves CPU tensors only (the "
                        "library reads and writes host memory); move the model with "
                        "model.cpu()" % (key, tensor.device))
    if tensor.layout != torch.strided:
        raise TypeError("parameter %r is %s: psmq.torch moves dense tensors only"
                        % (key, tensor.layout))
    if tensor.dtype != torch.float32:
        raise TypeError("parameter %r is %s: psmq moves float32 only (model.float())"
                        % (key, tensor.dtype))
    if not tensor.is_contiguous():
        raise ValueError("parameter %r is not contiguous" % (key,))


def _check_grad(key, grad):
    if grad.layout != torch.strided or grad.dtype != torch.float32:
        raise TypeError("the gradient of %r is %s %s: psmq.torch pushes dense float32"
                        % (key, grad.layout, grad.dtype))


def _numpy(tensor):
    """A numpy view of a CPU float32 tensor's memory (contiguous first if
    it is not, which copies)."""
    tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    return tensor.numpy()


class DistributedOptimizer(torch.optim.Optimizer):
    """A torch.optim.Optimizer whose steps the broker takes.

    worker      a connected psmq.Worker (this process's rank)
    params      model.named_parameters(), or a list of parameter groups:
                dicts with "params" (named_parameters() pairs) and any of
                the settings below
    optimizer, lr, momentum, beta1, beta2, eps, decay_steps
                the broker's update rule of the keys (psmq.Worker.init);
                0 means the broker's default for that setting
    wire_dtype  "f32", "bf16" or "f16": what the keys travel as
                (psmq.Worker.init)
    overlap     push each gradient from a hook as backward makes it
    prefix      put in front of every key name (several models, one broker)
    """

    def __init__(self, worker, params, *, optimizer="sgd", lr=0.01, momentum=0.0, beta1=0.0,
                 beta2=0.0, eps=0.0, decay_steps=0, wire_dtype="f32", overlap=True, prefix=""):
        if not isinstance(worker, Worker):
            raise TypeError("DistributedOptimizer(worker, ...): a psmq.Worker, not %s"
                            % type(worker).__name__)
        defaults = dict(optimizer=optimizer, lr=lr, momentum=momentum, beta1=beta1, beta2=beta2,
                        eps=eps, decay_steps=decay_steps, wire_dtype=wire_dtype)
        params = list(params)
        if params and isinstance(params[0], dict):
            groups = []
            for i, group in enumerate(params):
                group = dict(group)
                unknown = set(group) - set(_SETTINGS) - {"params"}
                if unknown:
                    raise ValueError("parameter group %d: unknown settings %s (known: %s)"
                                     % (i, sorted(unknown), ", ".join(_SETTINGS)))
                named = _named(group.pop("params"), "parameter group %d" % i)
                groups.append(dict(group, params=[t for _, t in named],
                                   names=[prefix + n for n, _ in named]))
        else:
            named = _named(params, "DistributedOptimizer(worker, params)")
            groups = [dict(params=[t for _, t in named], names=[prefix + n for n, _ in named])]
        self.worker = worker
        self.overlap = overlap
        self._keys = {}  # key -> parameter
        for group in groups:
            for key, tensor in zip(group["names"], group["params"]):
                if key in self._keys:
                    raise ValueError("two parameters named %r" % (key,))
                _check_parameter(key, tensor)
                self._keys[key] = tensor
        super().__init__(groups, defaults)
        for group in self.param_groups:
            for number in ("lr", "momentum", "beta1", "beta2", "eps"):
                if not isinstance(group[number], numbers.Real):
                    raise TypeError("%s %r is not a number" % (number, group[number]))
        self._tickets = []  # pushes the hooks sent this clock
        self._pushed = set()  # their keys
        self._failed = None  # the first failure of a hook's push, for step()
        self._init_and_pull()
        self._hooks = []
        if overlap:
            for key, tensor in self._keys.items():
                if tensor.requires_grad:
                    self._hooks.append(tensor.register_hook(self._hook(key)))

    def _init_and_pull(self):
        """The keys, with each group's rule; then every rank takes the
        values of the INIT that made them."""
        for group in self.param_groups:
            settings = {name: group[name] for name in _SETTINGS}
            for key, tensor in zip(group["names"], group["params"]):
                self.worker.init(key, _numpy(tensor), **settings)
        self._pull()

    def resync(self):
        """After a psmq.RejoinedError (the worker registered again with a
        broker that restarted or evicted it): drop what the failed step
        sent, make the keys again (a broker restarted without a checkpoint
        has none: they take this model's values; INIT is harmless for keys
        that exist) and pull the broker's values into the model. Then redo
        the steps from worker.current_clock."""
        tickets, self._tickets = self._tickets, []
        for ticket in tickets:
            try:
                ticket.wait()
            except Error:
                pass
        self._pushed = set()
        self._failed = None
        self._init_and_pull()

    def _hook(self, key):
        def push(grad):
            _check_grad(key, grad)
            #  A failure is kept for step() to raise, not raised through
            #  autograd's C++ engine: backward completes, and once one push
            #  failed the others are not sent
            if self._failed is None:
                try:
                    #  Copied, not lent: autograd makes this tensor the
                    #  parameter's .grad, into which a second backward
                    #  before step() accumulates in place
                    self._tickets.append(self.worker.push_async(key, _numpy(grad)))
                    self._pushed.add(key)
                except Error as error:
                    self._failed = error
            return None  # the gradient itself is left as it is

        return push

    def _pull(self):
        """Every parameter, from the broker, into the tensors' own memory."""
        with torch.no_grad():
            self.worker.pull({key: _numpy(tensor) for key, tensor in self._keys.items()})

    def step(self, closure=None):
        """Push the gradients of this step, clock, and pull the broker's new
        parameters into the model. Returns closure()'s loss when given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        tickets, self._tickets = self._tickets, []
        failed, self._failed = self._failed, None
        for ticket in tickets:  # collect every one, even after a failure
            try:
                ticket.wait()
            except Error as error:
                failed = failed or error
        if failed is not None:
            self._pushed = set()
            raise failed
        rest = {}
        for key, tensor in self._keys.items():
            if key not in self._pushed and tensor.grad is not None:
                _check_grad(key, tensor.grad)
                rest[key] = _numpy(tensor.grad)
        self._pushed = set()
        #  The gradients left finish the clock in the same message; a pull
        #  sent behind the clock is answered with the step that clock
        #  waited for: one round trip for all three
        clock = self.worker.push_clock_async(rest) if rest else self.worker.clock_async()
        try:
            self._pull()
        except Error:
            try:  # collected, so that the worker holds no stale ticket
                clock.wait()
            except Error:
                pass
            raise
        clock.wait()
        return loss

    def remove_hooks(self):
        """Stop pushing from backward (step() then pushes the .grad)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @property
    def keys(self):
        """{key: parameter} of the broker's keys this optimizer steps."""
        return dict(self._keys)
