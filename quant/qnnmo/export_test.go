package qnnmo

// QATTestModel is qatTestModel for the external tests.
var QATTestModel = qatTestModel
