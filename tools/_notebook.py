"""Shared by the notebook writers: metadata papermill needs, no outputs, a parameters cell."""

import nbformat as nbf


def write_notebook(cells: list, path: str, parameters_cell: int = 1) -> None:
    nb = nbf.v4.new_notebook()
    nb["cells"] = cells
    nb["metadata"] = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for k, c in enumerate(nb["cells"]):
        c["id"] = f"cell-{k}"  # stable ids: regenerating changes only what changed
        if c["cell_type"] == "code":
            c["outputs"] = []
            c["execution_count"] = None
    nb["cells"][parameters_cell]["metadata"]["tags"] = ["parameters"]
    nbf.write(nb, path)
