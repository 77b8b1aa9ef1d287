"""Course plumbing: the models on paper, the shipped weights, the data, the machine.

``models`` describes the course's networks without a framework (layers, parameters,
multiply-adds); ``shipped`` loads their trained weights; ``data`` makes the 32x32 digits and
the splits; ``env`` reports versions, CPU and quantized engine; ``paths`` says where caches
go; ``viz`` draws the lessons' figures; ``grade`` runs a learner's exercise notebook;
``_quiet`` keeps third-party start-up noise out of the notebooks.

May import: ``tutorial_lib.core`` and this folder.
"""
