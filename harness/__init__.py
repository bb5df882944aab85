"""harness: evaluate implicit instruction tuning with and without the paper's rule expert.

The data flow is visible in the sub-packages::

    tasks/ (task spec) -> prompts (prompt format) -> distributed/ (ModelWorker)
      -> generation (model + experts/) -> store/ (samples) -> metrics/ -> report/

Example:
    >>> import harness
    >>> harness.__version__
    '0.1.0'
"""

__version__ = "0.1.0"
