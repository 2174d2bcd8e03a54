// Fixture of the CTest `layers_script`: a folder that no layer declares.
