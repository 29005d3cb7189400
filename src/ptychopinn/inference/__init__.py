"""Inference stage: chunked prediction and vectorised stitching (DESIGN section 6).

Modules: :mod:`.reconstruct` (``reconstruct``, returning the one result type
:class:`~ptychopinn.data.reconstruction.Reconstruction`; also ``ptychopinn.reconstruct``),
:mod:`.predict` (``predict``, ``iter_patches``, ``resolve_model``), :mod:`.stitch` (``stitch``,
``Stitcher``, ``default_crop``). Nothing is imported here (the function names equal the module
names, so they are not re-exported)."""
