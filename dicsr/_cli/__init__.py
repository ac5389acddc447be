"""The ``dicsr enhance`` command behind :mod:`dicsr.cli`, one module per job (what each
input writes, and under which names, is :mod:`dicsr._photo_files`, shared with :mod:`dicsr.distributed`).

* :mod:`~dicsr._cli.inputs`: which files an invocation names (files, folders, glob patterns);
* :mod:`~dicsr._cli.enhance`: the options, the run over the inputs and its summary.
"""
