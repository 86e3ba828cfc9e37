"""The allow-list and deny-list behind :mod:`dormant.provenance.pickles`.

``SAFE_GLOBALS`` is PyTorch's ``weights_only`` unpickler allow-list (torch 2.x:
``torch._weights_only_unpickler._get_allowed_globals``), plus the NumPy array and scalar
reconstructors and plain builtin and standard-library value types. Everything else a pickle
imports is flagged; names below are flagged ``critical``.
"""

from __future__ import annotations

# fmt: off
#: Exact ``module.name`` imports that are safe to load (data types, tensor rebuilders).
SAFE_GLOBALS: frozenset[str] = frozenset({
    '_codecs.encode', 'builtins.bool', 'builtins.bytearray', 'builtins.bytes',
    'builtins.complex', 'builtins.dict', 'builtins.float', 'builtins.frozenset',
    'builtins.int', 'builtins.list', 'builtins.range', 'builtins.set', 'builtins.slice',
    'builtins.str', 'builtins.tuple', 'collections.Counter', 'collections.OrderedDict',
    'datetime.date', 'datetime.datetime', 'datetime.time', 'datetime.timedelta',
    'datetime.timezone', 'decimal.Decimal', 'fractions.Fraction',
    'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar',
    'numpy._core.numeric._frombuffer', 'numpy.core.multiarray._reconstruct',
    'numpy.core.multiarray.scalar', 'numpy.core.numeric._frombuffer', 'numpy.dtype',
    'numpy.ndarray', 'torch.BFloat16Storage', 'torch.BFloat16Tensor', 'torch.BoolStorage',
    'torch.BoolTensor', 'torch.ByteStorage', 'torch.ByteTensor', 'torch.CharStorage',
    'torch.CharTensor', 'torch.ComplexDoubleStorage', 'torch.ComplexDoubleTensor',
    'torch.ComplexFloatStorage', 'torch.ComplexFloatTensor', 'torch.DoubleStorage',
    'torch.DoubleTensor', 'torch.FloatStorage', 'torch.FloatTensor', 'torch.HalfStorage',
    'torch.HalfTensor', 'torch.IntStorage', 'torch.IntTensor', 'torch.LongStorage',
    'torch.LongTensor', 'torch.QInt32Storage', 'torch.QInt8Storage', 'torch.QUInt2x4Storage',
    'torch.QUInt4x2Storage', 'torch.QUInt8Storage', 'torch.ShortStorage', 'torch.ShortTensor',
    'torch.Size', 'torch.Tensor', 'torch._tensor._rebuild_from_type_v2',
    'torch._utils._rebuild_device_tensor_from_cpu_tensor',
    'torch._utils._rebuild_device_tensor_from_numpy',
    'torch._utils._rebuild_meta_tensor_no_storage', 'torch._utils._rebuild_nested_tensor',
    'torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state',
    'torch._utils._rebuild_qtensor', 'torch._utils._rebuild_sparse_tensor',
    'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v2',
    'torch._utils._rebuild_tensor_v3', 'torch._utils._rebuild_wrapper_subclass',
    'torch.bfloat16', 'torch.bits16', 'torch.bits1x8', 'torch.bits2x4', 'torch.bits4x2',
    'torch.bits8', 'torch.bool', 'torch.complex128', 'torch.complex32', 'torch.complex64',
    'torch.cuda.BFloat16Storage', 'torch.cuda.BFloat16Tensor', 'torch.cuda.BoolStorage',
    'torch.cuda.BoolTensor', 'torch.cuda.ByteStorage', 'torch.cuda.ByteTensor',
    'torch.cuda.CharStorage', 'torch.cuda.CharTensor', 'torch.cuda.ComplexDoubleStorage',
    'torch.cuda.ComplexDoubleTensor', 'torch.cuda.ComplexFloatStorage',
    'torch.cuda.ComplexFloatTensor', 'torch.cuda.DoubleStorage', 'torch.cuda.DoubleTensor',
    'torch.cuda.FloatStorage', 'torch.cuda.FloatTensor', 'torch.cuda.HalfStorage',
    'torch.cuda.HalfTensor', 'torch.cuda.IntStorage', 'torch.cuda.IntTensor',
    'torch.cuda.LongStorage', 'torch.cuda.LongTensor', 'torch.cuda.ShortStorage',
    'torch.cuda.ShortTensor', 'torch.cuda.sparse.BFloat16Tensor',
    'torch.cuda.sparse.ByteTensor', 'torch.cuda.sparse.CharTensor',
    'torch.cuda.sparse.DoubleTensor', 'torch.cuda.sparse.FloatTensor',
    'torch.cuda.sparse.HalfTensor', 'torch.cuda.sparse.IntTensor',
    'torch.cuda.sparse.LongTensor', 'torch.cuda.sparse.ShortTensor', 'torch.device',
    'torch.double', 'torch.float', 'torch.float16', 'torch.float32', 'torch.float4_e2m1fn_x2',
    'torch.float64', 'torch.float8_e4m3fn', 'torch.float8_e4m3fnuz', 'torch.float8_e5m2',
    'torch.float8_e5m2fnuz', 'torch.float8_e8m0fnu', 'torch.half', 'torch.int1', 'torch.int16',
    'torch.int2', 'torch.int3', 'torch.int32', 'torch.int4', 'torch.int5', 'torch.int6',
    'torch.int64', 'torch.int7', 'torch.int8', 'torch.long', 'torch.nn.parameter.Parameter',
    'torch.per_channel_affine', 'torch.per_channel_affine_float_qparams',
    'torch.per_channel_symmetric', 'torch.per_tensor_affine', 'torch.per_tensor_symmetric',
    'torch.qint32', 'torch.qint8', 'torch.quint2x4', 'torch.quint4x2', 'torch.quint8',
    'torch.serialization._get_layout', 'torch.short', 'torch.sparse.BFloat16Tensor',
    'torch.sparse.ByteTensor', 'torch.sparse.CharTensor', 'torch.sparse.DoubleTensor',
    'torch.sparse.FloatTensor', 'torch.sparse.HalfTensor', 'torch.sparse.IntTensor',
    'torch.sparse.LongTensor', 'torch.sparse.ShortTensor', 'torch.storage.TypedStorage',
    'torch.storage.UntypedStorage', 'torch.uint1', 'torch.uint16', 'torch.uint2',
    'torch.uint3', 'torch.uint32', 'torch.uint4', 'torch.uint5', 'torch.uint6', 'torch.uint64',
    'torch.uint7', 'torch.uint8', 'uuid.UUID',
})

#: Top-level modules whose names run code, touch files, processes or the network, or load code.
DANGEROUS_MODULES: frozenset[str] = frozenset({
    'IPython', '__builtin__', '__main__', '_io', '_pickle', '_posixsubprocess', '_thread',
    'asyncio', 'bdb', 'builtins', 'cPickle', 'cProfile', 'cloudpickle', 'code', 'codecs',
    'codeop', 'commands', 'concurrent', 'copy_reg', 'copyreg', 'ctypes', 'dbm', 'dill',
    'distutils', 'ensurepip', 'fcntl', 'ftplib', 'functools', 'gc', 'glob', 'http', 'httplib',
    'httpx', 'imp', 'importlib', 'inspect', 'io', 'itertools', 'jinja2', 'joblib', 'linecache',
    'logging', 'marshal', 'mmap', 'multiprocessing', 'nt', 'ntpath', 'operator', 'os',
    'pathlib', 'pdb', 'pickle', 'pickletools', 'pip', 'pkgutil', 'platform', 'popen2', 'posix',
    'posixpath', 'profile', 'pty', 'requests', 'resource', 'runpy', 'select', 'selectors',
    'setuptools', 'shelve', 'shutil', 'signal', 'site', 'smtplib', 'socket', 'socketserver',
    'sqlite3', 'ssl', 'subprocess', 'sys', 'sysconfig', 'telnetlib', 'tempfile', 'threading',
    'timeit', 'trace', 'types', 'urllib', 'urllib2', 'urllib3', 'venv', 'weakref',
    'webbrowser', 'xmlrpc', 'yaml', 'zipimport',
})

#: Dotted prefixes inside otherwise-trusted libraries that load code or further pickles.
DANGEROUS_PREFIXES: tuple[str, ...] = (
    'torch.load', 'torch.hub', 'torch.jit', 'torch.package', 'torch.serialization',
    'torch.utils.cpp_extension', 'torch._dynamo', 'torch._inductor', 'torch.fx',
    'torch.distributed', 'torch.ops', 'torch.classes', 'torch._C', 'torch.utils.data',
    'numpy.load', 'numpy.lib.format', 'numpy.lib.npyio', 'numpy.testing', 'numpy.f2py',
    'numpy.distutils', 'numpy.ctypeslib', 'numpy.fromfile', 'pandas.read_pickle', 'pandas.io',
    'keras.models.load_model', 'tensorflow.io', 'transformers.dynamic_module_utils',
    'huggingface_hub',
)
# fmt: on
