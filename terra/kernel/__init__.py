"""The Python half of the Terra Jupyter kernel.

`terra-kernel` (kernel/, C++ on xeus) embeds CPython and drives
:class:`terra.kernel.shell.TerraShell`, an IPython shell, through a handful of
``kernel_*`` methods. The modules here talk back to the C++ side through the
embedded module ``_terra_kernel`` and therefore only work inside that process:

- :mod:`terra.kernel.shell`   the shell and its request methods
- :mod:`terra.kernel.streams` ``sys.stdout``/``sys.stderr`` over fds 1 and 2
- :mod:`terra.kernel.display` display publisher and display hook
- :mod:`terra.kernel.comm`    the ``comm`` package's hooks (ipywidgets, anywidget)
- :mod:`terra.kernel.stdin`   ``input()`` and ``getpass()`` over the stdin channel
"""
