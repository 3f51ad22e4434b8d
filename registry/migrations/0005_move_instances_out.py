"""Instance and the pipelines moved to the `instances` app, their tables kept.

The foreign keys follow them in the state; the database is not touched.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('instances', '0001_initial'),
        ('registry', '0004_registry_revision'),
        ('tasks', '0004_task_instance_app'),
    ]

    operations = [
        # State only: the foreign keys already point at the same table.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='registryformat',
                    name='instance',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='registry_formats', to='instances.instance'),
                ),
                migrations.RemoveField(
                    model_name='pipelinederivative',
                    name='instance',
                ),
                migrations.AlterField(
                    model_name='keyring',
                    name='instance',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='keyring', serialize=False, to='instances.instance'),
                ),
                migrations.AlterField(
                    model_name='registryrevision',
                    name='instance',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='instances.instance'),
                ),
                migrations.RemoveField(
                    model_name='pipelinederivative',
                    name='extends',
                ),
                migrations.DeleteModel(
                    name='PipelineDistribution',
                ),
                migrations.DeleteModel(
                    name='Instance',
                ),
                migrations.DeleteModel(
                    name='PipelineDerivative',
                ),
            ],
        ),
    ]
