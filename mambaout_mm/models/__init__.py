"""The model: MambaOut's variants and blocks, the dense-prediction backbone, and the
implementations (backends, CPU kernels) its layers run on.
"""
